"""What a claim costs does not grow with the backlog: counted, not timed.

In memory, the outbox's clock hands out instants that count every comparison made between
them: a heap keyed by due time compares O(log n) times per item claimed, a scan or a sort of
the waiting items O(n) or more. On Redis, the commands a claim runs (inside its script) are
counted by the server (INFO commandstats); each reads a bounded range (ZRANGE ... LIMIT).
The timings are measured in bench/outbox.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from app.bus import RedisBus
from app.bus._outbox_memory import MemoryOutbox
from app.bus.hooks import OutboxItem, OutboxQuota
from harness.redis import RedisServer
from tests.components import missing_component

QUOTA = OutboxQuota(max_items=1_000_000, max_bytes=1 << 30)
BATCH = 16


class Instant(float):
    """A monotonic reading that counts the comparisons made with it."""

    compared = 0

    def _count(self) -> None:
        Instant.compared += 1

    def __lt__(self, other: Any) -> bool:
        self._count()
        return float(self) < float(other)

    def __le__(self, other: Any) -> bool:
        self._count()
        return float(self) <= float(other)

    def __gt__(self, other: Any) -> bool:
        self._count()
        return float(self) > float(other)

    def __ge__(self, other: Any) -> bool:
        self._count()
        return float(self) >= float(other)

    def __eq__(self, other: object) -> bool:
        self._count()
        return isinstance(other, float) and float(self) == float(other)

    __hash__ = float.__hash__

    def __add__(self, other: Any) -> Instant:
        return Instant(float(self) + float(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Instant:
        return Instant(float(self) - float(other))


def counting_clock() -> Instant:
    return Instant(time.monotonic())


async def comparisons_per_claim(backlog: int) -> float:
    """Comparisons of claiming (and retrying) a batch, averaged over a few batches, with
    `backlog` items waiting of which some were retried already (stale heap entries)."""
    outbox = MemoryOutbox(clock=counting_clock)
    for n in range(backlog):
        await outbox.outbox_put(OutboxItem(f"offline:{n}", "x", "offline"), QUOTA)
    rounds = 5
    Instant.compared = 0
    for _ in range(rounds):
        batch = await outbox.outbox_claim("offline", BATCH, 30)
        assert len(batch.claims) == BATCH
        for claim in batch.claims:
            await outbox.outbox_retry(claim, 3600)
    return Instant.compared / rounds


async def test_a_memory_claim_costs_about_the_same_at_100k_items_as_at_100() -> None:
    small = await comparisons_per_claim(100)
    large = await comparisons_per_claim(100_000)
    # log2(100k) / log2(100) is 2.5: a heap stays within that; a scan would be 1000x.
    assert large < small * 4, (small, large)
    assert large < 100 * BATCH, large  # not even one comparison per waiting item


async def commands_per_claim(client: Redis, bus: RedisBus, prefix: str, backlog: int) -> int:
    pipe = client.pipeline(transaction=False)
    due = f"{prefix}:{{outbox}}:due:offline"
    items = f"{prefix}:{{outbox}}:items:offline"
    # Filled directly (one script call per item would take a while): the same data model.
    for start in range(0, backlog, 10_000):
        chunk = range(start, min(backlog, start + 10_000))
        pipe.zadd(due, {f"offline:{n}": 0 for n in chunk})
        pipe.hset(items, mapping={f"offline:{n}": "x" for n in chunk})
    pipe.hset(f"{prefix}:{{outbox}}:bytes", "offline", backlog * 10)
    await pipe.execute()
    await bus.outbox_claim("offline", 1, 30)  # the once-a-minute look at the old layout
    await client.config_resetstat()
    batch = await bus.outbox_claim("offline", BATCH, 30)
    stats = await client.info("commandstats")
    assert len(batch.claims) == BATCH and batch.held.items == backlog
    counted = {k: v["calls"] for k, v in stats.items() if k.startswith("cmdstat_")}
    # The claim's own commands, not the reading of the statistics.
    counted.pop("cmdstat_info", None)
    counted.pop("cmdstat_config|resetstat", None)
    return sum(counted.values())


async def test_a_redis_claim_runs_the_same_commands_at_100k_items_as_at_100() -> None:
    # A private server: nobody else's commands in its statistics.
    try:
        server = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    client = Redis.from_url(server.url, decode_responses=True)
    buses = [RedisBus(server.url, prefix=p) for p in ("small", "large")]
    try:
        small = await commands_per_claim(client, buses[0], "small", 100)
        large = await commands_per_claim(client, buses[1], "large", 100_000)
    finally:
        for bus in buses:
            await bus.aclose()
        await client.aclose()
        server.stop()
    assert small == large, (small, large)
    assert large <= 4 * BATCH + 10


@pytest.mark.parametrize("backlog", [100])
async def test_the_counting_clock_counts(backlog: int) -> None:
    """The instrument itself: a sort of the backlog would be counted."""
    Instant.compared = 0
    sorted(counting_clock() for _ in range(backlog))
    assert Instant.compared >= backlog - 1
