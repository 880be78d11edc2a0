"""A chat-bff that sends push notices, as the push tests set it up (here and across a fleet):
its settings, an app's pushToken, and a chat requested through it that the agent joined."""

from __future__ import annotations

import httpx

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess

PUSH_TOKEN = "fcm:dGVzdC10b2tlbi0xMjM0NTY3ODkw_-"
READER_WINDOW_S = 1.5


# Polls every second without a reader (the keep-alive cadence), a reader counts for 1.5 s
# after a read, and retries come quickly. An open stream's presence is renewed by the
# registry's sweep (every half lease); the window must outlast the gap between two sweeps.
PUSH_ENV = {
    "BFF_LEASE_TTL_S": "1",
    "BFF_READER_WINDOW_S": str(READER_WINDOW_S),
    "BFF_POLL_FLOOR_S": "0.2",
    "BFF_POLL_CEILING_S": "0.3",
    "BFF_POLL_KEEPALIVE_S": "1.0",
    "BFF_WEBHOOK_RETRY_MIN_S": "0.2",
    "BFF_WEBHOOK_RETRY_MAX_S": "1.0",
    "BFF_CHAT_CREATE_BURST": "1000",
}


def request_chat(bff: ServerProcess, agent: EmulatorControl, **extra: object) -> tuple[str, str]:
    """(handle, upstream id) of a new chat the agent has joined (without a greeting)."""
    body = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Order", **extra}
    answer = httpx.post(bff.url + "/api/v2/chats", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    upstream_id = next(str(r["chat_id"]) for r in reversed(agent.requests()) if r.get("chat_id"))
    agent.http.post(f"/chats/{upstream_id}/agent/join", json={"greet": False}).raise_for_status()
    return str(answer.json()["id"]), upstream_id
