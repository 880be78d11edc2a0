"""Every kind of upstream failure becomes the right status for our client: never a 500, never a
stack trace, never a word from the upstream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.core.handles import HandleCodec
from harness.chats import start_chat, wait_for
from harness.emulator import EmulatorControl, create_upstream_chat
from harness.servers import SECRET_KEY, ServerProcess, free_port, start_bff

# (case, faults, HTTP status for our client)
FAULTS: list[tuple[str, dict[str, Any], int]] = [
    ("JSON internal error", {"error_status": 500, "error_body_kind": "json"}, 502),
    ("HTML 500", {"error_status": 500, "error_body_kind": "html"}, 502),
    ("plain-text 500", {"error_status": 500, "error_body_kind": "text"}, 502),
    ("garbage 200", {"error_status": 200, "error_body_kind": "garbage"}, 502),
    ("empty 200", {"error_status": 200, "error_body_kind": "empty"}, 502),
    ("HTML 405", {"error_status": 405, "error_body_kind": "html"}, 502),
    ("plain-text 404", {"error_status": 404, "error_body_kind": "text"}, 404),
    ("JSON 400", {"error_status": 400, "error_body_kind": "json"}, 502),
    ("HTML 502", {"error_status": 502, "error_body_kind": "html"}, 503),
    ("outage 503", {"outage": True, "retry_after_s": 7}, 503),
    ("dropped connection", {"drop_connection": True}, 503),
]

UPSTREAM_WORDS = ("Internal Server Error", "<html", 'statusMessage": "Internal error')


@pytest.fixture(scope="module")
def handle(bff: ServerProcess) -> str:
    with httpx.Client(base_url=bff.url) as http:
        return start_chat(http)


@pytest.mark.parametrize(("faults", "status"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_upstream_failure_maps_to_status(
    client: httpx.Client, control: EmulatorControl, handle: str, faults: dict[str, Any], status: int
) -> None:
    control.faults(**faults)
    answers = [
        client.post(f"/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": "x"}),
        client.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"}),
    ]
    if status != 404:
        answers.append(
            client.post(
                "/api/v2/chats",
                json={"operationName": "RequestChat", "nickname": "a", "subject": "b"},
            )
        )
    for answer in answers:
        assert answer.status_code == status, (faults, answer.text)
        body = answer.json()
        assert set(body) == {"statusCode", "statusMessage"}
        for word in UPSTREAM_WORDS:
            assert word not in answer.text
        if status in (429, 503):
            assert int(answer.headers["Retry-After"]) >= 1
    # Reads are served from the shared cache, so they keep working during the fault.
    assert client.get(f"/api/v2/chats/{handle}").status_code == 200
    control.clear_faults()
    answer = client.post(
        f"/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": "y"}
    )
    assert answer.status_code == 200, "did not recover"


def test_retry_after_from_upstream_is_passed_on(
    client: httpx.Client, control: EmulatorControl, handle: str
) -> None:
    control.faults(outage=True, retry_after_s=7)
    answer = client.post(
        f"/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": "x"}
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"


def test_cold_read_during_outage_is_503(
    client: httpx.Client, control: EmulatorControl, emulator: ServerProcess
) -> None:
    upstream_id = create_upstream_chat(emulator)
    handle = HandleCodec([SECRET_KEY.encode()]).seal(upstream_id)
    control.faults(outage=True)
    answer = client.get(f"/api/v2/chats/{handle}")
    assert answer.status_code == 503
    assert answer.json()["statusCode"] == 12
    assert answer.headers["Retry-After"]
    control.clear_faults()
    assert wait_for(lambda: client.get(f"/api/v2/chats/{handle}").status_code == 200)


def test_request_chat_failure_is_not_a_404(client: httpx.Client, control: EmulatorControl) -> None:
    control.faults(error_status=404, error_body_kind="html")
    answer = client.post(
        "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "a", "subject": "b"}
    )
    assert answer.status_code == 502


def test_unknown_chat_upstream_is_404(client: httpx.Client, control: EmulatorControl) -> None:
    # A well-formed handle of ours whose chat the upstream does not know (it answers with the
    # documented plain-text "400 Chat not found <id>").
    handle = HandleCodec([SECRET_KEY.encode()]).seal("no-such-chat")
    answer = client.get(f"/api/v2/chats/{handle}")
    assert answer.status_code == 404
    assert answer.json()["statusCode"] == 6
    answer = client.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"})
    assert answer.status_code == 404


@pytest.fixture(scope="module")
def impatient_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_UPSTREAM_TIMEOUT_S="0.5")
    yield server
    server.stop()


def test_upstream_timeout_is_504(
    impatient_bff: ServerProcess, control: EmulatorControl, handle: str
) -> None:
    control.faults(hang=True)
    with httpx.Client(base_url=impatient_bff.url, timeout=10) as http:
        answer = http.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"})
    assert answer.status_code == 504
    assert answer.json()["statusCode"] == 12


def test_refused_connection_is_503() -> None:
    server = start_bff(f"http://127.0.0.1:{free_port()}")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            answer = http.post(
                "/api/v2/chats",
                json={"operationName": "RequestChat", "nickname": "a", "subject": "b"},
            )
            assert answer.status_code == 503
            assert answer.headers["Retry-After"]
            # Reported, but the instance stays ready: the upstream is the whole fleet's, and
            # failing readiness on it would take every instance out at once.
            ready = http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["upstream"] == "unavailable"
            assert ready.json()["status"] == "degraded"
    finally:
        server.stop()


def upstream_counts(bff: ServerProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    found = re.findall(
        r'^bff_upstream_requests_total\{operation="(\w+)",outcome="(\w+)"\} (\S+)$', text, re.M
    )
    return {(op, outcome): float(n) for op, outcome, n in found}


def test_upstream_calls_are_counted_by_operation_and_outcome(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl, handle: str
) -> None:
    before = upstream_counts(bff)
    body = {"operationName": "SendMessage", "text": "counted"}
    assert client.post(f"/api/v2/chats/{handle}", json=body).status_code == 200
    control.faults(outage=True)
    assert client.post(f"/api/v2/chats/{handle}", json=body).status_code == 503
    control.clear_faults()
    after = upstream_counts(bff)

    def added(operation: str, outcome: str) -> float:
        return after.get((operation, outcome), 0) - before.get((operation, outcome), 0)

    assert added("SendMessage", "ok") == 1
    assert added("SendMessage", "UpstreamUnavailableError") == 1
    assert after.get(("GetMessages", "ok"), 0) > 0  # the chat's poller
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    count = re.search(
        r'^bff_upstream_latency_seconds_count\{operation="SendMessage"\} (\S+)$', text, re.M
    )
    assert count is not None and float(count.group(1)) >= 2
