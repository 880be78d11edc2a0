"""What only a Redis Cluster asks of the bus, on a real one (three masters, a replica each):
sharded fan-out read on each chat's own node and never broadcast to every node, and a slot
resharded under live subscribers and lease holders."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest

from app.bus import RedisBus
from app.events import EventKind
from app.models import TranscriptEntry
from harness.topologies import ClusterGroup
from tests.bus.support import drain, take


def msgs(*indices: int) -> list[TranscriptEntry]:
    return [TranscriptEntry(i, {"index": i, "text": f"m{i}"}) for i in indices]


@pytest.fixture
async def cluster_bus(redis_cluster: ClusterGroup) -> AsyncIterator[RedisBus]:
    prefix = f"test-{secrets.token_hex(6)}"
    bus = RedisBus(redis_cluster.url, prefix=prefix, op_timeout_s=2.0, failover_wait_s=10.0)
    yield bus
    await bus.aclose()
    await asyncio.to_thread(redis_cluster.delete_prefix, prefix)


def cluster_stats(cluster: ClusterGroup) -> dict[int, dict[str, int]]:
    out = {}
    for node in cluster.processes:
        with node.client() as client:
            text = client.execute_command("CLUSTER", "INFO")
        out[node.port] = {
            k: int(v)
            for k, _, v in (line.partition(":") for line in text.split())
            if k.startswith("cluster_stats_messages_publish")
        }
    return out


async def test_fanout_is_sharded_one_link_per_node(
    cluster_bus: RedisBus, redis_cluster: ClusterGroup
) -> None:
    bus = cluster_bus
    chats = [secrets.token_hex(16) for _ in range(12)]
    owners = {c: redis_cluster.owner_of(bus._channel(c)) for c in chats}
    assert len({p.port for p in owners.values()}) == 3, "the chats should span every master"
    fences = {c: await bus.acquire(c, 30) for c in chats}
    before = cluster_stats(redis_cluster)
    async with contextlib.AsyncExitStack() as exits:
        subs = {c: await exits.enter_async_context(bus.subscribe(c)) for c in chats}
        for chat, owner in owners.items():
            with owner.client() as client:
                channel = bus._channel(chat)
                assert client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1
                assert client.execute_command("PUBSUB", "NUMSUB", channel)[1] == 0
        for node in redis_cluster.primaries():
            with node.client() as client:
                readers = [c for c in client.client_list() if c["name"] == bus.pubsub_client_name]
                assert len(readers) == 1, "one pub/sub connection per node"
        for chat in chats:
            fence = fences[chat]
            assert fence is not None
            events = await bus.commit(fence, msgs(1, 2))
            assert await take(subs[chat], 2) == events
        for chat in chats:
            assert await drain(subs[chat]) == []  # each got its own chat's events only
    after = cluster_stats(redis_cluster)
    for port, stats in after.items():
        # Classic PUBLISH would go to every node over the cluster bus; sharded stays in the
        # shard (the master tells its replica).
        sent = stats.get("cluster_stats_messages_publish_sent", 0)
        assert sent == before[port].get("cluster_stats_messages_publish_sent", 0), port
    assert sum(s.get("cluster_stats_messages_publishshard_sent", 0) for s in after.values()) > sum(
        s.get("cluster_stats_messages_publishshard_sent", 0) for s in before.values()
    )


async def test_resharded_slot_moves_subscriptions_and_leases(
    cluster_bus: RedisBus, redis_cluster: ClusterGroup
) -> None:
    bus = cluster_bus
    chat = secrets.token_hex(16)
    fence = await bus.acquire(chat, 30)
    assert fence is not None
    await bus.commit(fence, msgs(1))
    slot = redis_cluster.slot_of(bus._channel(chat))
    source = redis_cluster.owner_of(bus._channel(chat))
    target = next(p for p in redis_cluster.primaries() if p.port != source.port)
    async with bus.subscribe(chat) as sub:
        await bus.commit(fence, msgs(2))
        assert [e.index for e in await take(sub, 1)] == [2]
        try:
            await asyncio.to_thread(redis_cluster.migrate_slot, slot, source, target)
            # The old node unsubscribed us; the bus follows the slot and resyncs.
            assert [e.kind for e in await take(sub, 1, within=10)] == [EventKind.RESYNC]
            assert redis_cluster.owner_of(bus._channel(chat)).port == target.port
            # Writes follow the slot (MOVED), the lease held, and delivery goes on.
            assert await bus.renew([fence], 30) == {fence}
            events = await bus.commit(fence, msgs(3))
            assert events is not None
            assert [e.index for e in await take(sub, 1, within=5)] == [3]
            assert [m.index for m in await bus.messages(chat, 0)] == [1, 2, 3]
        finally:
            await asyncio.to_thread(redis_cluster.migrate_slot, slot, target, source)
        assert [e.kind for e in await take(sub, 1, within=10)] == [EventKind.RESYNC]
        await bus.commit(fence, msgs(4))
        assert [e.index for e in await take(sub, 1, within=5)] == [4]
