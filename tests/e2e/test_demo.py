"""`chat-bff demo` (what `make demo` runs): the service with the emulator reached in-process
through httpx's ASGI transport instead of the network. A whole chat, on its own defaults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_journey import post, start_chat
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    server = ServerProcess("demo").start()
    yield server
    server.stop()


def wait_for_text(client: httpx.Client, handle: str, sender: str, after: int) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": after, "wait": 5})
        assert answer.status_code == 200, answer.text
        for message in answer.json()["messages"]:
            if message["type"] == "Text" and message["from"]["type"] == sender:
                found: dict[str, object] = message
                return found
    raise AssertionError(f"no {sender} text after index {after}")


def test_demo_runs_a_whole_chat_in_one_process(demo: ServerProcess) -> None:
    with httpx.Client(base_url=demo.url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "widget.js" in page.text
        handle = start_chat(client)
        greeting = wait_for_text(client, handle, "Agent", 1)
        assert client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"] == "Chatting"
        assert post(client, handle, "SendMessage", text="hello demo").status_code == 200
        index = int(str(greeting["index"]))
        mine = wait_for_text(client, handle, "Customer", index + 1)
        assert mine["text"] == "hello demo"
        reply = wait_for_text(client, handle, "Agent", int(str(mine["index"])) + 1)
        assert reply["text"]
        assert post(client, handle, "Complete").status_code == 200
        assert client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"] == "Idle"
        assert post(client, handle, "SendMessage", text="too late").status_code == 409
        assert client.get("/readyz").status_code == 200
