"""Bus fixtures: the same tests run on a MemoryBus and on a RedisBus with a private prefix, on
one Redis server, a Sentinel group and a Redis Cluster."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from app.bus import Bus, MemoryBus, RedisBus
from harness.redis import REDIS_URL
from harness.topologies import Topology
from tests.bus.support import BusFactory, delete_prefix
from tests.components import redis_or_skip


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    await redis_or_skip()
    client = Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(6)}"


def topology_url(request: pytest.FixtureRequest, kind: str) -> Topology | None:
    """The shared Sentinel group or Cluster for `kind` (started on first use), else None."""
    if kind == "sentinel":
        group: Topology = request.getfixturevalue("sentinel_group")
        return group
    if kind == "cluster":
        cluster: Topology = request.getfixturevalue("redis_cluster")
        return cluster
    return None


@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
async def make(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[BusFactory]:
    """Builds buses of the parametrised kind (in-process, or Redis: one server, a Sentinel
    group, a Cluster); all buses of one test share one namespace, as instances of one fleet
    do. Everything is closed and deleted afterwards."""
    kind: str = request.param
    topology = topology_url(request, kind)
    url = topology.url if topology is not None else REDIS_URL
    if kind == "redis":
        await redis_or_skip()
    made: list[Bus] = []

    async def factory(**kwargs: Any) -> Bus:
        kwargs.setdefault("subscriber_buffer", 64)
        bus: Bus
        if kind == "memory":
            if made:
                # One process has one MemoryBus: "another instance" is the same object.
                return made[0]
            bus = MemoryBus(**kwargs)
        else:
            kwargs.setdefault("op_timeout_s", 2.0)
            bus = RedisBus(url, prefix=prefix, **kwargs)
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.aclose()
    if topology is not None:
        await asyncio.to_thread(topology.delete_prefix, prefix)
    elif kind == "redis":
        client = Redis.from_url(REDIS_URL)
        await delete_prefix(client, prefix)
        await client.aclose()


@pytest.fixture
async def bus(make: BusFactory) -> Bus:
    return await make()
