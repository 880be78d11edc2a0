"""The attacker's side of the outbox: many clients leave the largest messages they can while the
operator's offline receiver is down. A real chat-bff process (memory bus, and a private Redis),
the emulator, a push receiver that is up and an offline receiver that refuses connections.

The offline quota fills (507, no Retry-After, counted) and its bytes stay under the cap
(metrics; on Redis also the outbox keys' own memory), while the push notices of a chat in the
background are all still enqueued and delivered: the offline flood cannot refuse or hold up
a single one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from redis import Redis

from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.components import missing_component
from tests.e2e.push import PUSH_ENV, PUSH_TOKEN, READER_WINDOW_S, request_chat
from tests.webhook_receiver import Receiver

CAP_BYTES = 1 << 20  # the smallest byte quota a setting allows
ATTACKERS = 64
# About 30 KB of UTF-8, under the 32 KiB body limit: the largest message a client can leave.
BIG = {
    "nickname": "Mallory",
    "email": "mallory@example.com",
    "subject": "s" * 256,
    "text": "x" * 4000,
    "userData": {f"k{n:02d}": "v" * 1000 for n in range(24)},
}


@pytest.fixture(scope="module")
def quiet_upstream() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture
def agent(quiet_upstream: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(quiet_upstream.url)
    yield control
    control.http.close()


@pytest.fixture(params=["memory", "redis"])
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer | None]:
    if request.param == "memory":
        yield None
        return
    try:
        server = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    yield server
    server.stop()


def leave(bff: ServerProcess, n: int) -> httpx.Response:
    # Each from its own address (behind the trusted proxy): per-IP limits do not help here.
    headers = {"x-forwarded-for": f"10.9.{n // 250}.{n % 250 + 1}"}
    body = {**BIG, "text": f"{n:04d}" + BIG["text"][4:]}
    return httpx.post(bff.url + "/api/v2/offline-messages", json=body, headers=headers, timeout=20)


def metric(bff: ServerProcess, line_start: str) -> float:
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def outbox_key_bytes(redis: RedisServer) -> int:
    client = Redis.from_url(redis.url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match="flood:{outbox}:*", count=1000))
        return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)
    finally:
        client.close()


def test_an_offline_flood_stays_under_its_cap_and_refuses_no_push_notice(
    quiet_upstream: ServerProcess, agent: EmulatorControl, redis: RedisServer | None
) -> None:
    down = Receiver()  # never started: the offline receiver refuses connections
    env = {
        **PUSH_ENV,
        "BFF_TRUSTED_PROXIES": "127.0.0.1/32",
        "BFF_OFFLINE_WEBHOOK_URL": down.url,
        "BFF_OFFLINE_WEBHOOK_SECRET": down.secret,
        "BFF_OFFLINE_OUTBOX_MAX_BYTES": str(CAP_BYTES),
        # The quota that matters is the byte cap; push notices get a small one of their own.
        "BFF_PUSH_OUTBOX_MAX": "50",
    }
    if redis is not None:
        env |= {"BFF_REDIS_URL": redis.url, "BFF_REDIS_PREFIX": "flood"}
    with Receiver() as pushes:
        bff = start_bff(
            quiet_upstream.url,
            BFF_PUSH_WEBHOOK_URL=pushes.url,
            BFF_PUSH_WEBHOOK_SECRET=pushes.secret,
            **env,
        )
        try:
            handle, upstream_id = request_chat(bff, agent, pushToken=PUSH_TOKEN)
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda n: leave(bff, n), range(ATTACKERS)))
            statuses = [a.status_code for a in answers]
            accepted = statuses.count(202)
            assert set(statuses) == {202, 507}, statuses
            # Everything accepted fits the cap; the first refusal came when the next did not.
            assert accepted >= 25 and accepted * len(json.dumps(BIG)) <= CAP_BYTES, accepted
            refused = next(a for a in answers if a.status_code == 507)
            assert refused.json()["statusCode"] == 13
            assert "Retry-After" not in refused.headers
            assert "waiting for delivery" in refused.json()["statusMessage"]

            # The chat's app is in the background: every agent message is notified.
            time.sleep(READER_WINDOW_S + 0.5)
            said = [agent.agent_say(upstream_id, f"reply {n}") for n in range(3)]
            pushes.wait_for(lambda ds: len(pushes.accepted()) >= 3, timeout_s=20)
            notified = sorted(d.json()["data"]["message"]["index"] for d in pushes.accepted())
            assert notified == said
            assert all(d.json()["data"]["chat"] == handle for d in pushes.accepted())
            # Still full for left messages, not for push notices.
            assert leave(bff, ATTACKERS + 1).status_code == 507

            offline_bytes = 'bff_outbox_bytes{kind="offline"}'
            deadline = time.monotonic() + 10
            while metric(bff, 'bff_outbox_items{kind="offline"}') != accepted:
                assert time.monotonic() < deadline, "the worker did not report the backlog"
                time.sleep(0.2)
            assert 0.7 * CAP_BYTES < metric(bff, offline_bytes) <= CAP_BYTES
            refusals = metric(bff, 'bff_outbox_refused_total{kind="offline",limit="bytes"}')
            assert refusals == ATTACKERS - accepted + 1
            assert metric(bff, 'bff_outbox_refused_total{kind="push",limit="items"}') == 0
            assert metric(bff, 'bff_outbox_refused_total{kind="push",limit="bytes"}') == 0
            assert "push outbox full" not in bff.logs()
            if redis is not None:
                # What Redis itself holds for the outbox: the cap, plus its allocator's rounding
                # (values of ~29 KB take 32 KB blocks) and a few hundred bytes per item.
                held = outbox_key_bytes(redis)
                assert held <= CAP_BYTES * 1.2 + 300 * accepted, held
        finally:
            bff.stop()
