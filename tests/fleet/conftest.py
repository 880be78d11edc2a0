"""A fleet on loopback: several `chat-bff serve` processes on one Redis and one emulator.

The Redis is a private server (fresh per test: some tests flush or restart it), or one of the
real topologies of `tests/topologies.py`: the shared Sentinel group or Cluster (each fleet has
its own key prefix), or a fresh one for tests that kill a Redis node."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.components import missing_component
from tests.servers import RedisServer, ServerProcess, start_bff
from tests.topologies import Topology

FLEET_ENV = {
    "BFF_LEASE_TTL_S": "1.5",
    "BFF_POLL_FLOOR_S": "0.2",
    "BFF_POLL_CEILING_S": "0.5",
    "BFF_POLL_BACKOFF_MAX_S": "4",
    "BFF_SHUTDOWN_GRACE_S": "3",
    "BFF_CHAT_CREATE_BURST": "1000",
    "BFF_SEND_BURST": "1000",
}
TOPOLOGIES = ["plain", "sentinel", "cluster"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    yield server
    server.stop()


class Fleet:
    def __init__(
        self,
        redis_url: str,
        upstream_url: str,
        size: int,
        *,
        redis: RedisServer | None = None,
        topology: Topology | None = None,
        **env: str,
    ) -> None:
        self.redis_url = redis_url
        self.upstream_url = upstream_url
        self.prefix = f"fleet-{secrets.token_hex(4)}"
        self.env = {**FLEET_ENV, **env}
        self.instances: list[ServerProcess] = []
        self.topology = topology
        if redis is not None:
            self.redis = redis
        for _ in range(size):
            self.add()

    def add(self) -> ServerProcess:
        server = start_bff(
            self.upstream_url,
            BFF_REDIS_URL=self.redis_url,
            BFF_REDIS_PREFIX=self.prefix,
            **self.env,
        )
        self.instances.append(server)
        return server

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.instances]

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.instances if s.proc is not None and s.proc.poll() is None]

    def metric(self, server: ServerProcess, name: str, labels: str = "") -> float:
        """One sample of `name` (with exactly these `labels`, e.g. `{operation="x"}`) in the
        server's /metrics; 0 when absent."""
        text = httpx.get(server.url + "/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def pollers(self, server: ServerProcess) -> int:
        return int(self.metric(server, "bff_pollers"))

    def holder(self) -> ServerProcess:
        holders = [s for s in self.alive() if self.pollers(s) > 0]
        assert len(holders) == 1, f"expected one lease holder, found {len(holders)}"
        return holders[0]

    def stop(self) -> None:
        for server in self.instances:
            server.kill()
        if self.topology is not None:
            # A topology a test broke on purpose may refuse; it is thrown away anyway.
            with contextlib.suppress(Exception):
                self.topology.delete_prefix(self.prefix)


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
