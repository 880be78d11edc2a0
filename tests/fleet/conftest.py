"""A fleet on loopback: several `chat-bff serve` processes on one private Redis and one
emulator. Each destructive test gets a fresh fleet."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.components import missing_component
from tests.servers import RedisServer, ServerProcess, start_bff

FLEET_ENV = {
    "BFF_LEASE_TTL_S": "1.5",
    "BFF_POLL_INTERVAL_S": "0.5",
    "BFF_POLL_FAST_INTERVAL_S": "0.2",
    "BFF_POLL_IDLE_INTERVAL_S": "1.0",
    "BFF_POLL_BACKOFF_MAX_S": "4",
    "BFF_SHUTDOWN_GRACE_S": "3",
    "BFF_CHAT_CREATE_BURST": "1000",
    "BFF_SEND_BURST": "1000",
}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    yield server
    server.stop()


class Fleet:
    def __init__(self, redis: RedisServer, upstream_url: str, size: int) -> None:
        self.redis = redis
        self.upstream_url = upstream_url
        self.instances: list[ServerProcess] = []
        for _ in range(size):
            self.add()

    def add(self) -> ServerProcess:
        server = start_bff(self.upstream_url, BFF_REDIS_URL=self.redis.url, **FLEET_ENV)
        self.instances.append(server)
        return server

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.instances]

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.instances if s.proc is not None and s.proc.poll() is None]

    def pollers(self, server: ServerProcess) -> int:
        text = httpx.get(server.url + "/metrics", timeout=5).text
        match = re.search(r"^bff_pollers (\S+)$", text, re.M)
        return int(float(match.group(1))) if match else 0

    def holder(self) -> ServerProcess:
        holders = [s for s in self.alive() if self.pollers(s) > 0]
        assert len(holders) == 1, f"expected one lease holder, found {len(holders)}"
        return holders[0]

    def stop(self) -> None:
        for server in self.instances:
            server.kill()


@pytest.fixture
def fleet(redis_server: RedisServer, emulator: ServerProcess) -> Iterator[Fleet]:
    group = Fleet(redis_server, emulator.url, 3)
    yield group
    group.stop()
