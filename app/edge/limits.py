"""Abuse limits the routes apply, fleet-wide: a rate per key and a cap on concurrent holders.

Owns the two small interfaces routes use and what a refusal looks like (429 with Retry-After).
The counting is the bus's (`base.Limits`): in Redis for a fleet, so N instances enforce one
limit, not N; in the process on the memory bus. A bus that cannot be reached fails the
request (503 after the bus's failover wait), as any other bus call would.
It must not know HTTP beyond the error it raises, nor how the bus counts.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.bus.guards import Limits
from app.errors import RateLimitedError


class RateLimiter:
    """A token bucket per key (a client key, `clients.client_key`): `burst` at once,
    `per_minute` sustained."""

    def __init__(self, limits: Limits, name: str, per_minute: float, burst: int) -> None:
        self._limits = limits
        self._name = name
        self._per_minute = per_minute
        self._burst = burst

    async def hit(self, key: str) -> None:
        """Count one request; RateLimitedError (with the wait) when over the rate."""
        wait = await self._limits.take(self._name, key, self._per_minute, self._burst)
        if wait > 0:
            raise RateLimitedError(retry_after_s=max(1, math.ceil(wait)))


class ConcurrencyLimiter:
    """At most `limit` concurrent holders per key (open streams per client key or per chat).

    `acquire` counts one holder or raises RateLimitedError; every successful `acquire` must be
    matched by one `release` (never blocks, safe in a `finally` or a callback). Holders of an
    instance that dies stop counting within the bus's holder ttl."""

    def __init__(
        self, limits: Limits, name: str, limit: int, *, message: str = "Too many open streams"
    ) -> None:
        self._limits = limits
        self._name = name
        self._limit = limit
        self._message = message

    async def acquire(self, key: str) -> None:
        if not await self._limits.occupy(self._name, key, self._limit):
            raise RateLimitedError(self._message, retry_after_s=5)

    def release(self, key: str) -> None:
        self._limits.vacate(self._name, key)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)
