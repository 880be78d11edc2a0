"""Fleet fixtures: three `chat-bff serve` processes (`tests/fleet/fleet.py`) on one Redis and the
session's emulator.

The Redis is a private server (fresh per test: some tests flush or restart it), or one of the
real topologies of `harness/topologies.py`: the shared Sentinel group or Cluster (each fleet has
its own key prefix), or a fresh one for tests that kill a Redis node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.redis import RedisServer
from harness.servers import ServerProcess
from harness.topologies import Topology
from tests.components import missing_component
from tests.fleet.fleet import Fleet

TOPOLOGIES = ["plain", "sentinel", "cluster"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    yield server
    server.stop()


@pytest.fixture
def fleet(redis_server: RedisServer, emulator: ServerProcess) -> Iterator[Fleet]:
    group = Fleet(redis_server.url, emulator.url, 3, redis=redis_server)
    yield group
    group.stop()


@pytest.fixture(params=TOPOLOGIES, scope="module")
def topology_fleet(request: pytest.FixtureRequest, emulator: ServerProcess) -> Iterator[Fleet]:
    """Three instances on a private Redis, the shared Sentinel group or the shared Cluster,
    shared by the tests of a module that leave three live instances behind."""
    kind: str = request.param
    server: RedisServer | None = None
    if kind == "plain":
        try:
            server = RedisServer().start()
        except FileNotFoundError:
            missing_component("redis-server is not installed")
        group = Fleet(server.url, emulator.url, 3, redis=server)
    else:
        topology: Topology = request.getfixturevalue(
            "sentinel_group" if kind == "sentinel" else "redis_cluster"
        )
        group = Fleet(topology.url, emulator.url, 3, topology=topology)
    yield group
    group.stop()
    if server is not None:
        server.stop()
