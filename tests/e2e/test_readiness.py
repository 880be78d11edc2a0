"""Readiness cannot starve customers (issue 18, finding 8): against a real `chat-bff serve`
whose upstream hangs on every read, 45 concurrent `/readyz` cost the upstream one probe (one
for the whole process, inside the read slots, its result shared), answer promptly, and a
customer's RequestChat made meanwhile succeeds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import wait_for
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff, start_emulator

OK_CHAT = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Help"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    # Its own: the hanging reads must not reach any other test's chats.
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fresh(upstream: ServerProcess) -> Iterator[ServerProcess]:
    """No call made yet: nothing recent tells readiness how the upstream is, so it probes."""
    server = start_bff(upstream.url)
    yield server
    server.stop()


def probes(control: EmulatorControl) -> int:
    return sum(1 for r in control.requests() if "readiness-probe" in str(r["path"]))


def test_45_readiness_checks_on_a_hanging_upstream_cost_one_probe_and_no_customer_write(
    fresh: ServerProcess, upstream: ServerProcess
) -> None:
    control = EmulatorControl(upstream.url)
    control.faults(hang=True, routes="read")
    try:
        answers: list[httpx.Response] = []
        started = threading.Barrier(46)

        def check() -> None:
            started.wait()
            answers.append(httpx.get(fresh.url + "/readyz", timeout=30))

        checks = [threading.Thread(target=check) for _ in range(45)]
        for thread in checks:
            thread.start()
        started.wait()
        wait_for(lambda: probes(control), what="the readiness probe upstream")
        # While the readiness checks wait on the hanging upstream: a customer's write.
        created = httpx.post(fresh.url + "/api/v2/chats", json=OK_CHAT, timeout=30)
        for thread in checks:
            thread.join(30)
        assert created.status_code == 200, created.text  # before issue 18: 504
        assert len(answers) == 45
        for answer in answers:
            assert answer.status_code == 200
            # Waiting on the probe: "unavailable" (not answering promptly); arrived after
            # the customer's write: "ok" (a call just succeeded).
            assert answer.json()["upstream"] in ("unavailable", "ok")
        assert probes(control) == 1  # before: one per check, each holding a connection
    finally:
        control.clear_faults()
        control.http.close()
