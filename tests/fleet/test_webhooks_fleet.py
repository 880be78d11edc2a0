"""Webhooks across a fleet on a private Redis: exactly one push notice per agent message when
the poller's holder is SIGKILLed, none repeated when Redis loses the chat's data, a left
message delivered by another instance after the one holding it was SIGKILLed, and no worker
of any instance ended by a receiver's odd Retry-After."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from app.core.handles import chat_key
from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.e2e.push import PUSH_ENV, PUSH_TOKEN, READER_WINDOW_S, request_chat
from tests.fleet.fleet import FLEET_ENV, WEBHOOK_ENV
from tests.webhook_receiver import Delivery, Receiver


@pytest.fixture
def quiet_upstream() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture
def agent(quiet_upstream: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(quiet_upstream.url)
    yield control
    control.http.close()


class PushFleet:
    def __init__(self, redis: RedisServer, upstream: ServerProcess, receiver: Receiver) -> None:
        self.env = {
            **FLEET_ENV,
            **PUSH_ENV,
            **WEBHOOK_ENV,
            "BFF_REDIS_URL": redis.url,
            "BFF_PUSH_WEBHOOK_URL": receiver.url,
            "BFF_PUSH_WEBHOOK_SECRET": receiver.secret,
        }
        self.upstream = upstream
        self.instances: list[ServerProcess] = []

    def add(self) -> ServerProcess:
        server = start_bff(self.upstream.url, **self.env)
        self.instances.append(server)
        return server

    def holder(self) -> ServerProcess:
        alive = [s for s in self.instances if s.proc is not None and s.proc.poll() is None]
        holders = [s for s in alive if "bff_pollers 1.0" in httpx.get(s.url + "/metrics").text]
        assert len(holders) == 1, f"expected one lease holder, found {len(holders)}"
        return holders[0]

    def stop(self) -> None:
        for server in self.instances:
            server.kill()


@pytest.fixture
def push_fleet(
    redis_server: RedisServer, quiet_upstream: ServerProcess
) -> Iterator[tuple[PushFleet, Receiver]]:
    with Receiver() as receiver:
        fleet = PushFleet(redis_server, quiet_upstream, receiver)
        for _ in range(3):
            fleet.add()
        yield fleet, receiver
        fleet.stop()


def indices(deliveries: list[Delivery]) -> list[int]:
    return sorted(
        d.json()["data"]["message"]["index"]
        for d in deliveries
        if d.json()["type"] == "chat.message"
    )


def test_one_notice_per_message_when_the_poller_holder_is_sigkilled(
    push_fleet: tuple[PushFleet, Receiver], agent: EmulatorControl
) -> None:
    fleet, receiver = push_fleet
    handle, upstream_id = request_chat(fleet.instances[0], agent, pushToken=PUSH_TOKEN)
    time.sleep(READER_WINDOW_S + 0.5)
    said = [agent.agent_say(upstream_id, f"line {n}") for n in range(3)]
    receiver.wait_for(lambda ds: indices(receiver.accepted()) == said)
    # The next notice fails at the receiver while the holder commits it; then the holder
    # dies. Another instance takes the chat over and another worker delivers the notice.
    receiver.answers[:] = [500] * 1000
    said.append(agent.agent_say(upstream_id, "line 3"))
    receiver.wait_for(lambda ds: any(d.status == 500 for d in ds))
    holder = fleet.holder()
    holder.kill()
    receiver.answers.clear()
    said += [agent.agent_say(upstream_id, f"line {n}") for n in (4, 5)]
    receiver.wait_for(lambda ds: indices(receiver.accepted()) == said, timeout_s=30)
    time.sleep(3)  # more polls, takeovers and sweeps: nothing may come twice
    accepted = receiver.accepted()
    assert indices(accepted) == said
    assert len({d.msg_id for d in accepted}) == len(said)
    failed_ids = {d.msg_id for d in receiver.all() if d.status == 500}
    assert len(failed_ids) == 1 and failed_ids <= {d.msg_id for d in accepted}
    assert all(d.json()["data"]["chat"] == handle for d in accepted)
    assert fleet.holder() is not holder


def test_no_notice_repeated_when_redis_loses_the_chat_data(
    push_fleet: tuple[PushFleet, Receiver], agent: EmulatorControl, redis_server: RedisServer
) -> None:
    fleet, receiver = push_fleet
    _, upstream_id = request_chat(fleet.instances[1], agent, pushToken=PUSH_TOKEN)
    time.sleep(READER_WINDOW_S + 0.5)
    said = [agent.agent_say(upstream_id, f"before {n}") for n in range(2)]
    receiver.wait_for(lambda ds: indices(receiver.accepted()) == said)
    # The cached transcript and the lease are lost (eviction, a partial loss): the chat's
    # next poller commits the whole transcript again from index 1.
    key = chat_key(upstream_id)
    for name in ("meta", "log", "lease"):
        redis_server.command("DEL", f"bff:{{{key}}}:{name}")
    said.append(agent.agent_say(upstream_id, "after the loss"))
    receiver.wait_for(lambda ds: indices(receiver.accepted()) == said, timeout_s=20)
    time.sleep(2)
    assert indices(receiver.accepted()) == said
    # Everything lost (FLUSHALL): the push record and its token went with it. The poller
    # commits the transcript again and nothing is notified twice; nor, without the token,
    # is anything later (the documented limit).
    redis_server.command("FLUSHALL")
    agent.agent_say(upstream_id, "after the flush")
    time.sleep(4)
    assert indices(receiver.accepted()) == said


def test_a_left_message_is_delivered_by_another_instance_after_sigkill(
    redis_server: RedisServer, quiet_upstream: ServerProcess
) -> None:
    with Receiver() as receiver:
        env = {
            **WEBHOOK_ENV,
            "BFF_WEBHOOK_RETRY_MAX_S": "1",
            "BFF_REDIS_URL": redis_server.url,
            "BFF_OFFLINE_WEBHOOK_URL": receiver.url,
            "BFF_OFFLINE_WEBHOOK_SECRET": receiver.secret,
        }
        receiver.answers[:] = [503] * 1000
        first = start_bff(quiet_upstream.url, **env)
        other: ServerProcess | None = None
        try:
            body = {"nickname": "Chris", "email": "chris@example.com", "text": "call me back"}
            answer = httpx.post(first.url + "/api/v2/offline-messages", json=body, timeout=10)
            assert answer.status_code == 202
            receiver.wait_for(lambda ds: len(ds) >= 2)  # it tried, and tried again
            first.kill()
            receiver.answers.clear()
            time.sleep(1)
            assert receiver.accepted() == []
            other = start_bff(quiet_upstream.url, **env)
            receiver.wait_for(lambda ds: bool(receiver.accepted()), 20)
            time.sleep(2)
            (delivered,) = receiver.accepted()
            assert delivered.json()["data"]["text"] == "call me back"
            assert {d.msg_id for d in receiver.all()} == {delivered.msg_id}
        finally:
            first.kill()
            if other is not None:
                other.stop()


def test_odd_retry_after_answers_kill_no_worker_of_the_fleet(
    redis_server: RedisServer, quiet_upstream: ServerProcess
) -> None:
    """`Retry-After: ²` used to raise inside the worker that read it and end it; the item
    stayed due, so every instance's worker met it in turn and died. Now each odd answer is a
    retry, and afterwards each instance's worker still delivers on its own (the others
    paused with SIGSTOP)."""
    with Receiver() as receiver:
        env = {
            **WEBHOOK_ENV,
            "BFF_WEBHOOK_RETRY_MAX_S": "1",
            "BFF_CHAT_CREATE_BURST": "100",
            "BFF_REDIS_URL": redis_server.url,
            "BFF_OFFLINE_WEBHOOK_URL": receiver.url,
            "BFF_OFFLINE_WEBHOOK_SECRET": receiver.secret,
        }
        odd = [(503, {"Retry-After": "\u00b2"}), (503, {"Retry-After": "\u00b9\u00b3"})]
        receiver.answers[:] = odd * 4
        instances = [start_bff(quiet_upstream.url, **env) for _ in range(2)]

        def leave(server: ServerProcess, text: str) -> None:
            body = {"nickname": "Chris", "email": "chris@example.com", "text": text}
            answer = httpx.post(server.url + "/api/v2/offline-messages", json=body, timeout=10)
            assert answer.status_code == 202

        def texts() -> list[str]:
            return sorted(d.json()["data"]["text"] for d in receiver.accepted())

        try:
            for n in range(4):
                leave(instances[n % 2], f"first {n}")
            receiver.wait_for(lambda ds: len(receiver.accepted()) == 4, timeout_s=30)
            assert len([d for d in receiver.all() if d.status == 503]) == len(odd) * 4
            for n, alone in enumerate(instances):
                others = [s for s in instances if s is not alone]
                for other in others:
                    assert other.proc is not None
                    other.proc.send_signal(signal.SIGSTOP)
                try:
                    leave(alone, f"alone {n}")
                    receiver.wait_for(lambda ds, n=n: f"alone {n}" in texts(), timeout_s=15)
                finally:
                    for other in others:
                        assert other.proc is not None
                        other.proc.send_signal(signal.SIGCONT)
            assert texts() == sorted([f"first {n}" for n in range(4)] + ["alone 0", "alone 1"])
            for server in instances:
                assert "crashed" not in server.logs()
                assert "Task exception" not in server.logs()
        finally:
            for server in instances:
                server.stop()
