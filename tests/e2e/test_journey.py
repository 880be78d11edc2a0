"""A whole customer chat through chat-bff, written the way an existing upstream client calls
the upstream: only the base URL differs, and no ContactCenterId is sent."""

from __future__ import annotations

from typing import Any

import httpx

from harness.chats import post, start_chat, wait_for
from harness.emulator import EmulatorControl


def test_full_customer_journey(client: httpx.Client, control: EmulatorControl) -> None:
    handle = start_chat(client)

    chat = client.get(f"/api/v2/chats/{handle}").json()
    assert chat["statusCode"] == 0
    assert chat["chat"]["id"] == handle
    assert chat["chat"]["state"] in ("WaitingForAgent", "Chatting")

    def agent_joined() -> bool:
        state: str = client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"]
        return state == "Chatting"

    wait_for(agent_joined, what="the agent to join")
    participants = client.get(f"/api/v2/chats/{handle}").json()["chat"]["participants"]
    assert {p["type"] for p in participants} >= {"Agent", "Customer"}
    assert all(isinstance(p["participantId"], str) for p in participants)

    for operation in ("SendStartTypingNotification", "SendStopTypingNotification"):
        answer = post(client, handle, operation)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"statusCode": 0}
    assert post(client, handle, "SendMessage", text="Where is my order?").json() == {
        "statusCode": 0
    }

    # Index-less reads, as the upstream's sample client does: each message exactly once.
    seen: list[dict[str, Any]] = []

    def agent_replied() -> bool:
        answer = client.get(f"/api/v2/chats/{handle}/messages")
        assert answer.status_code == 200
        seen.extend(answer.json()["messages"])
        texts = [m for m in seen if m["type"] == "Text" and m["from"]["type"] == "Agent"]
        return len(texts) >= 2  # the greeting and the reply

    wait_for(agent_replied, what="the agent's reply")
    indices = [m["index"] for m in seen]
    assert indices == sorted(set(indices)), "index-less reads repeated or reordered messages"
    types = {m["type"] for m in seen}
    assert {"ParticipantJoined", "Text", "TypingStarted", "TypingStopped"} <= types
    mine = [m for m in seen if m["type"] == "Text" and m["from"]["type"] == "Customer"]
    assert [m["text"] for m in mine] == ["Where is my order?"]

    # Explicit index reads return everything from that index, repeatably.
    full = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()["messages"]
    assert [m["index"] for m in full][: len(indices)] == indices
    assert (
        client.get(f"/api/v2/chats/{handle}/messages", params={"index": 0}).json()["messages"]
        == full
    ), "index=0 means everything, as documented"
    tail = client.get(f"/api/v2/chats/{handle}/messages", params={"index": indices[-1]}).json()
    assert tail["messages"][0]["index"] == indices[-1]

    assert post(client, handle, "Complete").json() == {"statusCode": 0}
    assert client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"] == "Idle"
    after = post(client, handle, "SendMessage", text="still there?")
    assert after.status_code == 409
    assert after.json()["statusCode"] == 2


def test_two_index_less_readers_never_get_the_same_message(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client, "Dana")
    upstream_id = next(str(r["chat_id"]) for r in reversed(control.requests()) if r.get("chat_id"))
    for n in range(3):
        control.agent_say(upstream_id, f"note {n}")
    got: list[int] = []
    with httpx.Client(base_url=str(client.base_url)) as other:

        def read_all() -> bool:
            for reader in (client, other):
                answer = reader.get(f"/api/v2/chats/{handle}/messages").json()
                got.extend(m["index"] for m in answer["messages"])
            return len(got) >= 4  # the customer's join and the three notes, at least

        wait_for(read_all, what="all messages")
    assert got == sorted(set(got))


def test_upstream_cookies_stay_on_the_server(
    client: httpx.Client, control: EmulatorControl
) -> None:
    answer = client.post(
        "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "E", "subject": "s"}
    )
    assert "set-cookie" not in answer.headers
    handle = answer.json()["id"]
    client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
    client.get(f"/api/v2/chats/{handle}")
    upstream_id = next(str(r["chat_id"]) for r in reversed(control.requests()) if r.get("chat_id"))
    view = control.chat(upstream_id)
    assert view["cookie_seen_count"] >= 2  # type: ignore[operator]
    assert view["cookie_mismatch_count"] == 0
