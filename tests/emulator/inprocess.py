"""Helpers for the emulator tests: an emulator app behind httpx.ASGITransport, fast timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.emulator import Emulator

CC_ID = "test-contact-center"
BASE_URL = "http://upstream.test"

FAST: dict[str, Any] = {
    "contact_center_id": CC_ID,
    "agent_join_delay_s": 0.05,
    "agent_reply_delay_s": 0.05,
    "agent_typing_s": 0.02,
    "idle_disconnect_s": 30.0,
}


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float = 2.0, interval: float = 0.01
) -> None:
    """Wait until `check()` is true; fail the test after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within_s} s")
        await asyncio.sleep(interval)


@dataclass
class Harness:
    emulator: Emulator
    app: FastAPI
    client: httpx.AsyncClient
    extra_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def new_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """Another client of the same app (its own cookie jar)."""
        kwargs.setdefault("headers", {"ContactCenterId": CC_ID})
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL, **kwargs
        )
        self.extra_clients.append(client)
        return client

    async def request_chat(self, nickname: str = "Chris", **extra: Any) -> str:
        body = {"operationName": "RequestChat", "nickname": nickname, "subject": "Order 42"}
        body.update(extra)
        response = await self.client.post("/api/v2/chats", json=body)
        assert response.status_code == 200, response.text
        chat_id: str = response.json()["id"]
        return chat_id

    async def op(self, chat_id: str, operation: str, **fields: Any) -> httpx.Response:
        body = {"operationName": operation, **fields}
        return await self.client.post(f"/api/v2/chats/{chat_id}", json=body)

    async def chat(self, chat_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v2/chats/{chat_id}")
        assert response.status_code == 200, response.text
        chat: dict[str, Any] = response.json()["chat"]
        return chat

    async def messages(self, chat_id: str, index: int | None = 1) -> list[dict[str, Any]]:
        params = {} if index is None else {"index": index}
        response = await self.client.get(f"/api/v2/chats/{chat_id}/messages", params=params)
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def wait_for_message(self, chat_id: str, **match: Any) -> dict[str, Any]:
        """Poll until a message whose fields include `match` (from_type= matches from.type)."""
        found: list[dict[str, Any]] = []

        def fits(message: dict[str, Any]) -> bool:
            for key, value in match.items():
                actual = message["from"]["type"] if key == "from_type" else message.get(key)
                if actual != value:
                    return False
            return True

        async def check() -> bool:
            found[:] = [m for m in await self.messages(chat_id) if fits(m)]
            return bool(found)

        await eventually(check)
        return found[0]


HarnessFactory = Callable[..., Awaitable[Harness]]
