"""chat-bff in front of the hostile upstream (tests/fuzz/hostile.py): its settings (fast polls,
generous limits) and a chat created through it."""

from __future__ import annotations

import httpx

from harness.servers import ServerProcess
from tests.fuzz.hostile import HostileUpstream

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


def new_chat(bff: ServerProcess, hostile: HostileUpstream) -> tuple[str, str]:
    """A chat created through chat-bff: (handle, upstream id)."""
    answer = httpx.post(
        bff.url + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": "Chris", "subject": "fuzz"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id"], hostile.chat_ids[-1]
