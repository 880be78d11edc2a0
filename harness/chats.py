"""A customer's calls to a running chat-bff over HTTP, as an existing upstream client makes
them (only the base URL differs, no ContactCenterId), and waiting for something to show.

It must not start servers nor reach the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def start_chat(client: httpx.Client, nickname: str = "Chris") -> str:
    """RequestChat through `client`; the new chat's handle."""
    answer = client.post(
        "/api/v2/chats",
        json={
            "operationName": "RequestChat",
            "nickname": nickname,
            "subject": "Order 1234",
            "userData": {"orderId": "1234", "lang": "en"},
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["statusCode"] == 0
    assert body["path"] == f"/api/v2/chats/{body['id']}"
    handle: str = body["id"]
    return handle


def wait_for(predicate: Callable[[], T], timeout_s: float = 10.0, what: str = "condition") -> T:
    """The first truthy value of `predicate()`, asked every 50 ms; AssertionError after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def post(client: httpx.Client, handle: str, operation: str, **fields: str) -> httpx.Response:
    """One operation on a chat (`SendMessage`, `Complete`, ...)."""
    return client.post(f"/api/v2/chats/{handle}", json={"operationName": operation, **fields})
