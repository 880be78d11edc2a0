"""The Redis master SIGKILLed mid-chat, on a Sentinel group and on a Cluster (the master of the
chat's slot): a replica is promoted, and customers notice nothing. Every viewer gets every
message exactly once on the stream it already had open, and the customer's sends during the
failover wait and succeed; a chat requested while Redis dies for good is not left open
upstream. Real processes throughout; each test takes a fresh topology."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.core.handles import chat_key
from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff
from harness.topologies import ClusterGroup, SentinelGroup
from tests.fleet.fleet import Fleet, assert_complete, open_chat, talk, viewers_for, with_viewers


async def send(url: str, handle: str, text: str) -> tuple[int, float]:
    """A customer's message through one instance: (status, seconds it took)."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(
            f"{url}/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": text}
        )
    return answer.status_code, time.monotonic() - started


@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_redis_master_sigkill_mid_chat(
    kind: str, request: pytest.FixtureRequest, emulator: ServerProcess, control: EmulatorControl
) -> None:
    topology: SentinelGroup | ClusterGroup = request.getfixturevalue(
        "fresh_sentinel_group" if kind == "sentinel" else "fresh_redis_cluster"
    )
    fleet = Fleet(topology.url, emulator.url, 3, topology=topology)
    try:
        await failover_mid_chat(fleet, topology, control)
    finally:
        fleet.stop()


async def failover_mid_chat(
    fleet: Fleet, topology: SentinelGroup | ClusterGroup, control: EmulatorControl
) -> None:
    handle, upstream_id = open_chat(fleet, control, 0)
    viewers = viewers_for(fleet, handle, 2)
    sends: list[tuple[int, float]] = []
    figures: dict[str, float] = {}

    async def run() -> None:
        await asyncio.gather(*(v.wait_for(lambda v: len(v.message_indices) >= 3) for v in viewers))
        await talk(control, upstream_id, 3, 0.1)
        victim = topology.owner_of(f"{fleet.prefix}:{{{chat_key(upstream_id)}}}:lease")
        victim.kill()
        promoted = asyncio.create_task(asyncio.to_thread(topology.wait_failover, victim))
        # The agent keeps talking and the customer keeps writing, on every instance in turn,
        # while the replica is promoted.
        agent = asyncio.create_task(talk(control, upstream_id, 12, 0.5))
        for n in range(6):
            url = fleet.urls[n % len(fleet.urls)]
            sends.append(await send(url, handle, f"customer line {n}"))
            await asyncio.sleep(0.5)
        figures["promoted_s"] = await promoted
        await agent
        await assert_complete(viewers, control, upstream_id, timeout_s=30)

    await with_viewers(viewers, run)
    print(
        f"\nRedis master SIGKILL ({topology.kind}): replica promoted after "
        f"{figures['promoted_s']:.1f} s; customer sends (status, seconds): "
        f"{[(status, round(took, 2)) for status, took in sends]}"
    )
    assert [status for status, _ in sends] == [200] * len(sends)
    # Each viewer kept the stream it had: nothing was lost, nothing repeated, no reconnect.
    assert [v.connects for v in viewers] == [1] * len(viewers)
    assert len([s for s in fleet.alive() if fleet.pollers(s) > 0]) == 1


async def test_request_chat_while_redis_dies_leaves_no_open_chat(
    redis_server: RedisServer, emulator: ServerProcess, control: EmulatorControl
) -> None:
    """RequestChat succeeds upstream, then the bus write fails (Redis gone for longer than
    the failover wait): the new upstream chat is completed, not left open, and the client is
    told to retry."""
    bff = start_bff(
        emulator.url,
        BFF_REDIS_URL=redis_server.url,
        BFF_REDIS_FAILOVER_WAIT_S="1",
        BFF_REDIS_TIMEOUT_S="0.5",
    )
    try:
        control.faults(latency_ms=1500, routes="write", remaining=1)

        def request_chat() -> httpx.Response:
            body = {"operationName": "RequestChat", "nickname": "Orphan", "subject": "no"}
            return httpx.post(f"{bff.url}/api/v2/chats", json=body, timeout=30)

        answering = asyncio.create_task(asyncio.to_thread(request_chat))
        await asyncio.sleep(0.7)  # past the rate limit (the bus), waiting for the upstream
        redis_server.stop()
        answer = await answering
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        created = [r for r in control.requests() if r.get("chat_id")]
        view = control.chat(str(created[-1]["chat_id"]))
        assert view["customer_completed"] is True, view
    finally:
        bff.kill()
