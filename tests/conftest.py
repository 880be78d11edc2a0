"""Shared fixtures: a real emulator process and a real chat-bff process on loopback, the
emulator's control API, and the real Redis topologies (Sentinel, Cluster) shared by the bus and
fleet suites. What they are made of is the `harness` package, shared with the bench; a fixture
decides what a missing component means (a skip here, a failure on CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import httpx
import pytest

# The harness's own checks (a refused RequestChat, a timed-out wait) read like the tests' own.
pytest.register_assert_rewrite("harness")

from harness.emulator import EmulatorControl  # noqa: E402
from harness.servers import ServerProcess, start_bff, start_emulator  # noqa: E402
from harness.topologies import ClusterGroup, SentinelGroup, start_topology  # noqa: E402
from tests.components import missing_component  # noqa: E402

T = TypeVar("T", SentinelGroup, ClusterGroup)


@pytest.fixture(scope="session")
def emulator() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "0.3", "--agent-reply-delay", "0.2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    # Generous limits: the suite creates many chats from one IP on purpose.
    server = start_bff(
        emulator.url,
        BFF_CHAT_CREATE_PER_MINUTE="60000",
        BFF_CHAT_CREATE_BURST="10000",
        BFF_SEND_PER_MINUTE="60000",
        BFF_SEND_BURST="10000",
    )
    yield server
    server.stop()


@pytest.fixture
def control(emulator: ServerProcess) -> Iterator[EmulatorControl]:
    ctl = EmulatorControl(emulator.url)
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()
    ctl.close()


@pytest.fixture
def client(bff: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bff.url, timeout=15) as http:
        yield http


def topology(kind: type[T]) -> Iterator[T]:
    """A started topology for as long as the fixture lasts; without the binaries, a skip (or,
    on CI, a failure)."""
    try:
        group = start_topology(kind)
    except FileNotFoundError as exc:
        missing_component(str(exc))
    yield group
    group.stop()


# Shared by every test that leaves the topology as it found it (each uses its own key
# prefix); tests that kill a node take a fresh one.
@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    yield from topology(SentinelGroup)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterGroup]:
    yield from topology(ClusterGroup)


@pytest.fixture
def fresh_sentinel_group() -> Iterator[SentinelGroup]:
    yield from topology(SentinelGroup)


@pytest.fixture
def fresh_redis_cluster() -> Iterator[ClusterGroup]:
    yield from topology(ClusterGroup)
