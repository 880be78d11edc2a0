"""A chat-bff process in front of the hostile upstream (tests/fuzz/hostile.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.servers import ServerProcess, start_bff
from tests.fuzz.front import FAST_POLLS
from tests.fuzz.hostile import HostileUpstream


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    server = HostileUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hostile_bff(hostile: HostileUpstream) -> Iterator[ServerProcess]:
    server = start_bff(hostile.url, **FAST_POLLS)
    yield server
    server.stop()


@pytest.fixture
def fresh(hostile: HostileUpstream) -> Iterator[HostileUpstream]:
    hostile.clear()
    yield hostile
    hostile.clear()
