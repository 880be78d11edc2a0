"""One poller per chat across a fleet, delivery exactly once and in order through instance
deaths, Redis loss, upstream outages and graceful shutdowns. Real processes throughout; the
poll-stream and instance-death scenarios run on plain Redis, Sentinel and Cluster alike."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time

import httpx

from harness.emulator import EmulatorControl
from tests.fleet.fleet import (
    Fleet,
    assert_complete,
    chat_requests,
    open_chat,
    talk,
    transcript,
    viewers_for,
    with_viewers,
)


def polled_after(control: EmulatorControl, upstream_id: str, since: float) -> list[float]:
    """When (monotonic, shared by all processes here) the chat was polled after `since`."""
    times = [float(str(r["at"])) for r in chat_requests(control, upstream_id)]
    return [t for t in times if t > since]


READS = ("bff_upstream_requests_total", '{operation="GetMessages",outcome="ok"}')


def reads_per_instance(fleet: Fleet) -> list[float]:
    """Upstream message reads each instance has made so far (its own metrics)."""
    return [fleet.metric(s, *READS) for s in fleet.instances]


async def poll_rate(
    fleet: Fleet, control: EmulatorControl, per_instance: int, instances: int, window_s: float
) -> tuple[float, list[float]]:
    """Upstream requests per minute for one chat watched by SSE viewers and long-polls on
    `instances` instances, and the upstream reads each instance made meanwhile."""
    handle, upstream_id = open_chat(fleet, control, 0)
    viewers = viewers_for(fleet, handle, per_instance)[: per_instance * instances]
    rate: list[float] = []
    reads: list[float] = []

    async def run() -> None:
        await viewers[0].wait_for(lambda v: len(v.message_indices) >= 3)  # the agent greeted
        before = len(chat_requests(control, upstream_id))
        reads_before = reads_per_instance(fleet)
        started = time.monotonic()
        long_polls = 0
        async with httpx.AsyncClient(timeout=30) as http:
            while time.monotonic() - started < window_s:
                for url in fleet.urls[:instances]:
                    await http.get(
                        f"{url}/api/v2/chats/{handle}/messages", params={"index": 1, "wait": 0.3}
                    )
                    long_polls += 1
        after = len(chat_requests(control, upstream_id))
        reads.extend(b - a for a, b in zip(reads_before, reads_per_instance(fleet), strict=True))
        assert long_polls > 10
        rate.append((after - before) / (time.monotonic() - started) * 60)

    await with_viewers(viewers, run)
    complete(fleet, handle)
    return rate[0], reads


def complete(fleet: Fleet, handle: str) -> None:
    """The customer ends the chat: its poller stops, so a fleet shared by several tests polls
    only the chats of the test running (per-instance read counts stay attributable)."""
    with httpx.Client(base_url=fleet.alive()[0].url, timeout=10) as client:
        answer = client.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"})
        assert answer.status_code == 200, answer.text


async def test_many_viewers_cost_one_poll_stream(
    topology_fleet: Fleet, control: EmulatorControl
) -> None:
    fleet = topology_fleet
    one, _ = await poll_rate(fleet, control, 1, 1, 6.0)
    many, reads = await poll_rate(fleet, control, 3, 3, 6.0)
    print(
        f"\nupstream requests per chat per minute: 1 viewer {one:.0f}, 9 viewers on 3 "
        f"instances {many:.0f}; upstream reads per instance in the window {reads}"
    )
    # Exactly one instance polled the chat the whole time (on a Cluster whose lease renewals
    # failed, polling hopped between instances).
    assert sorted(r > 0 for r in reads) == [False, False, True], reads
    # Polls at most 0.5 s apart (the ceiling), not much closer: at most ~120/min plus chat
    # reads, whatever the audience.
    assert many <= 150
    assert many <= one * 1.5 + 15
    assert one >= 30, "the chat was not being polled"


async def test_sigkill_of_the_lease_holder_loses_and_repeats_nothing(
    topology_fleet: Fleet, control: EmulatorControl
) -> None:
    fleet = topology_fleet
    handle, upstream_id = open_chat(fleet, control, 0)
    viewers = viewers_for(fleet, handle, 2)
    takeover: list[float] = []

    async def run() -> None:
        await asyncio.gather(*(v.wait_for(lambda v: v.connects > 0) for v in viewers))
        await talk(control, upstream_id, 10, 0.1)
        holder = fleet.holder()
        killed_at = time.monotonic()
        holder.kill()
        speaker = asyncio.create_task(talk(control, upstream_id, 15, 0.1))
        while not takeover:
            later = polled_after(control, upstream_id, killed_at)
            if later:
                takeover.append(min(later) - killed_at)
            await asyncio.sleep(0.05)
            assert time.monotonic() - killed_at < 15, "nobody took the chat over"
        await speaker
        await assert_complete(viewers, control, upstream_id)
        assert len([s for s in fleet.alive() if fleet.pollers(s) > 0]) == 1

    await with_viewers(viewers, run)
    print(f"\ntakeover after SIGKILL: {takeover[0]:.2f} s (lease ttl 1.5 s)")
    assert takeover[0] <= 2 * 1.5 + 1.0
    # The fleet is shared with the module's other tests: back to three live instances.
    complete(fleet, handle)
    fleet.instances = fleet.alive()
    await asyncio.to_thread(fleet.add)


async def test_redis_restart_and_flush_mid_chat(fleet: Fleet, control: EmulatorControl) -> None:
    handle, upstream_id = open_chat(fleet, control, 1)
    viewers = viewers_for(fleet, handle, 1)

    async def run() -> None:
        await talk(control, upstream_id, 5, 0.1)
        await asyncio.gather(*(v.wait_for(lambda v: len(v.message_indices) >= 5) for v in viewers))
        fleet.redis.command("FLUSHALL")
        port = fleet.redis.port
        fleet.redis.stop()
        await talk(control, upstream_id, 3, 0.2)
        fleet.redis.port = port
        fleet.redis.start()
        await talk(control, upstream_id, 5, 0.1)
        await assert_complete(viewers, control, upstream_id, timeout_s=30)

    await with_viewers(viewers, run)
    with httpx.Client(timeout=10) as client:
        for url in fleet.urls:
            answer = client.get(f"{url}/api/v2/chats/{handle}/messages", params={"index": 1})
            assert [m["index"] for m in answer.json()["messages"]] == transcript(
                control, upstream_id
            )


async def test_upstream_outage_and_recovery(fleet: Fleet, control: EmulatorControl) -> None:
    handle, upstream_id = open_chat(fleet, control, 0)
    viewers = viewers_for(fleet, handle, 1)

    async def run() -> None:
        await asyncio.gather(*(v.wait_for(lambda v: len(v.message_indices) >= 3) for v in viewers))
        control.faults(outage=True)
        started = time.monotonic()
        await talk(control, upstream_id, 3, 0.1)
        await asyncio.gather(
            *(
                v.wait_for(
                    lambda v: any(e.data == {"upstream": "degraded"} for e in v.of("status"))
                )
                for v in viewers
            )
        )
        # Long enough for four failed polls, 0.25-0.5, 0.5-1, 1-2 and 2-4 s apart (from the
        # 0.5 s ceiling, doubling).
        await asyncio.sleep(9)
        during = polled_after(control, upstream_id, started)
        control.clear_faults()
        gaps = [b - a for a, b in itertools.pairwise(during)]
        print(f"\npolls during a 9 s outage: {len(during)}, gaps {[round(g, 2) for g in gaps]}")
        # Backoff: far fewer than polls at the 0.5 s ceiling would make, with growing gaps.
        assert len(during) <= 8
        assert max(gaps) >= 1.5
        assert gaps[-1] > gaps[0], "the gaps between failing polls must grow"
        await asyncio.gather(
            *(
                v.wait_for(
                    lambda v: v.of("status") and v.of("status")[-1].data == {"upstream": "ok"}
                )
                for v in viewers
            )
        )
        await assert_complete(viewers, control, upstream_id)

    await with_viewers(viewers, run)


async def test_sigterm_hands_over_without_a_gap(fleet: Fleet, control: EmulatorControl) -> None:
    handle, upstream_id = open_chat(fleet, control, 0)
    viewers = viewers_for(fleet, handle, 2)

    async def run() -> None:
        await asyncio.gather(*(v.wait_for(lambda v: len(v.message_indices) >= 3) for v in viewers))
        holder = fleet.holder()
        on_holder = [v for v in viewers if v.urls[0] == holder.url]
        stopped_at = time.monotonic()
        holder.signal(signal.SIGTERM)
        speaker = asyncio.create_task(talk(control, upstream_id, 10, 0.1))
        await asyncio.gather(*(v.wait_for(lambda v: v.connects >= 2, 10) for v in on_holder))
        later = polled_after(control, upstream_id, stopped_at)
        assert holder.proc is not None
        # uvicorn re-raises the signal after a graceful shutdown: -15 is a clean exit too.
        assert await asyncio.to_thread(holder.proc.wait, 15) in (0, -signal.SIGTERM)
        await speaker
        await assert_complete(viewers, control, upstream_id)
        assert later, "nobody polled after the handover"
        handover = min(later) - stopped_at
        print(f"\nhandover after SIGTERM: {handover:.2f} s")
        assert handover < 1.5, "the lease was not released on SIGTERM"

    await with_viewers(viewers, run)
