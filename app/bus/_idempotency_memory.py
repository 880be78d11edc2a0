"""The store behind `guards.IdempotencyStore` in this process (`MemoryIdempotency`), bounded
per client and in total, exactly.

Entries expire through a heap of expiry times, so no request scans the store; a client's
entries are counted by their own dict. Every method runs without an `await` between read and
write, so each one is atomic on the event loop. It must not know HTTP or what the keys mean,
be shared between processes, nor import redis (`_idempotency_redis` is the fleet's store).
"""

from __future__ import annotations

import heapq
import secrets
import time
from dataclasses import dataclass

from app.bus._hub import check_chat
from app.bus.guards import IdempotencyClaim


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    token: str
    expires: float
    answer: str | None = None


class MemoryIdempotency:
    """`IdempotencyStore` for one process."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._by_client: dict[str, dict[str, None]] = {}
        self._stored = 0
        # (expires, client, key); an item is stale when its entry expires later or is gone.
        self._expiries: list[tuple[float, str, str]] = []

    def _expire(self, now: float) -> None:
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, client, key = heapq.heappop(heap)
            entry = self._entries.get((client, key))
            if entry is not None and entry.expires <= now:
                self._drop(client, key, entry)

    def _drop(self, client: str, key: str, entry: _Entry) -> None:
        del self._entries[client, key]
        if entry.answer is not None:
            self._stored -= 1
        keys = self._by_client[client]
        del keys[key]
        if not keys:
            del self._by_client[client]

    def _live(self, client: str, key: str, now: float) -> _Entry | None:
        self._expire(now)
        return self._entries.get((check_chat(client), check_chat(key)))

    async def idempotency_begin(
        self,
        client: str,
        key: str,
        fingerprint: str,
        *,
        in_flight_s: float,
        max_per_client: int,
        max_total: int,
        floor_per_client: int = 0,
    ) -> IdempotencyClaim:
        now = time.monotonic()
        entry = self._live(client, key, now)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                return IdempotencyClaim("mismatch")
            if entry.answer is not None:
                return IdempotencyClaim("done", answer=entry.answer)
            return IdempotencyClaim("in_flight")
        keys = self._by_client.get(client, {})
        if len(keys) >= max_per_client:
            soonest = min(self._entries[client, k].expires for k in keys)
            return IdempotencyClaim("full", retry_after_s=soonest - now, limit="client")
        if self._stored >= max_total:
            if len(keys) < floor_per_client:
                return IdempotencyClaim("unkept")
            # The heap's first item is the soonest expiry (possibly of a claim: close enough).
            soonest = self._expiries[0][0] if self._expiries else now
            return IdempotencyClaim("full", retry_after_s=soonest - now, limit="total")
        token = secrets.token_hex(16)
        self._entries[client, key] = _Entry(fingerprint, token, now + in_flight_s)
        self._by_client.setdefault(client, {})[key] = None
        heapq.heappush(self._expiries, (now + in_flight_s, client, key))
        return IdempotencyClaim("new", token)

    async def idempotency_finish(
        self, client: str, key: str, token: str, answer: str, keep_s: float
    ) -> bool:
        now = time.monotonic()
        entry = self._live(client, key, now)
        if entry is None or entry.answer is not None or entry.token != token:
            return False
        entry.answer, entry.token, entry.expires = answer, "", now + keep_s
        self._stored += 1
        heapq.heappush(self._expiries, (entry.expires, client, key))
        return True

    async def idempotency_abandon(self, client: str, key: str, token: str) -> None:
        entry = self._live(client, key, time.monotonic())
        if entry is not None and entry.answer is None and entry.token == token:
            self._drop(client, key, entry)

    async def idempotency_size(self) -> int:
        self._expire(time.monotonic())
        return self._stored
