"""What the bus tests share besides their fixtures: the bus factory's type, the next events of
a subscription (or everything until it goes quiet), and deleting a test's key prefix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from app.bus import Bus
from app.events import ChatEvent

BusFactory = Callable[..., Awaitable[Bus]]


async def delete_prefix(client: Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}:*", count=500):
        await client.unlink(key)


async def take(sub: Any, n: int, within: float = 3.0) -> list[ChatEvent]:
    """The next `n` events of a subscription, or fail after `within` seconds."""
    it = aiter(sub)
    out: list[ChatEvent] = []
    async with asyncio.timeout(within):
        while len(out) < n:
            out.append(await anext(it))
    return out


async def drain(sub: Any, quiet: float = 0.15) -> list[ChatEvent]:
    """Everything a subscription delivers until it stays quiet for `quiet` seconds."""
    it = aiter(sub)
    out: list[ChatEvent] = []
    while True:
        try:
            async with asyncio.timeout(quiet):
                out.append(await anext(it))
        except TimeoutError:
            return out
