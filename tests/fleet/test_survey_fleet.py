"""One survey per chat for the whole fleet: two chat-bff instances on one Redis take surveys
for the same chat at the same moment, and exactly one is accepted; a retry of it on the other
instance gets its first answer; the operator's webhook gets it once, signed, across failed
attempts and the death of the instance that took it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.fleet.fleet import FLEET_ENV, WEBHOOK_ENV
from tests.webhook_receiver import Receiver


@pytest.fixture
def quiet_upstream() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


def test_one_survey_per_chat_across_two_instances(
    redis_server: RedisServer, quiet_upstream: ServerProcess
) -> None:
    agent = EmulatorControl(quiet_upstream.url)
    with Receiver() as receiver:
        env = {
            **FLEET_ENV,
            **WEBHOOK_ENV,
            "BFF_WEBHOOK_RETRY_MAX_S": "1",
            "BFF_REDIS_URL": redis_server.url,
            "BFF_SURVEY_WEBHOOK_URL": receiver.url,
            "BFF_SURVEY_WEBHOOK_SECRET": receiver.secret,
        }
        first, second = start_bff(quiet_upstream.url, **env), start_bff(quiet_upstream.url, **env)
        try:
            body = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Order"}
            handle = httpx.post(first.url + "/api/v2/chats", json=body, timeout=10).json()["id"]
            upstream_id = next(
                str(r["chat_id"]) for r in reversed(agent.requests()) if r.get("chat_id")
            )
            agent.http.post(f"/chats/{upstream_id}/agent/join", json={"greet": True})
            httpx.post(
                f"{second.url}/api/v2/chats/{handle}",
                json={"operationName": "Complete"},
                timeout=10,
            ).raise_for_status()

            receiver.answers[:] = [503] * 1000  # the operator's backend is down for now
            keys = [f'"0b9d7a4e-0000-4000-8000-{n:012d}"' for n in range(16)]

            def rate(n: int) -> httpx.Response:
                server = (first, second)[n % 2]
                return httpx.post(
                    f"{server.url}/api/v2/chats/{handle}/survey",
                    json={"rating": n % 5 + 1, "comment": f"answer {n}"},
                    headers={"Idempotency-Key": keys[n]},
                    timeout=15,
                )

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(rate, range(16)))
            statuses = [a.status_code for a in answers]
            assert sorted(statuses) == [202] + [409] * 15, statuses
            taken = statuses.index(202)
            # Its retry (same key, same body) on the other instance: the first answer again.
            retried = httpx.post(
                f"{(second, first)[taken % 2].url}/api/v2/chats/{handle}/survey",
                json={"rating": taken % 5 + 1, "comment": f"answer {taken}"},
                headers={"Idempotency-Key": keys[taken]},
                timeout=15,
            )
            assert retried.status_code == 202
            assert retried.headers.get("idempotent-replayed") == "true"

            # It was tried and failed; then the instance that took it dies, the backend
            # recovers, and the other instance delivers it.
            receiver.wait_for(lambda ds: len(ds) >= 2)
            (first, second)[taken % 2].kill()
            receiver.answers.clear()
            receiver.wait_for(lambda _: bool(receiver.accepted()), timeout_s=30)
            time.sleep(2)
            (delivered,) = receiver.accepted()
            assert delivered.verified
            data = delivered.json()["data"]
            assert data["chat"] == handle
            assert (data["rating"], data["comment"]) == (taken % 5 + 1, f"answer {taken}")
            assert {d.msg_id for d in receiver.all()} == {delivered.msg_id}
        finally:
            first.kill()
            second.kill()
            agent.http.close()
