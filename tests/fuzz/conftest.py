"""A chat-bff process in front of the hostile upstream (tests/fuzz/hostile.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fuzz.hostile import HostileUpstream
from tests.servers import ServerProcess, start_bff

FAST_POLLS = {
    "BFF_POLL_FLOOR_S": "0.1",
    "BFF_POLL_CEILING_S": "0.2",
    "BFF_POLL_BACKOFF_MAX_S": "0.5",
    "BFF_LEASE_TTL_S": "1.5",
    "BFF_UPSTREAM_TIMEOUT_S": "3",
    "BFF_CHAT_CREATE_PER_MINUTE": "60000",
    "BFF_CHAT_CREATE_BURST": "10000",
    "BFF_SEND_PER_MINUTE": "60000",
    "BFF_SEND_BURST": "10000",
    "BFF_UPSTREAM_MAX_BODY_BYTES": str(1 << 20),
}


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


def new_chat(bff: ServerProcess, hostile: HostileUpstream) -> tuple[str, str]:
    """A chat created through chat-bff: (handle, upstream id)."""
    answer = httpx.post(
        bff.url + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": "Chris", "subject": "fuzz"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id"], hostile.chat_ids[-1]
