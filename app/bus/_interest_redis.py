"""`chats.Interest` on Redis: which chats someone cares about, fleet-wide, and whether their
readers are present.

Data model (the chat's keys are the bus's, `RedisBus._key`; the interest set stands alone):

    <prefix>:{<chat>}:ref     what a poller needs to reach the chat upstream, PX interest ttl
    <prefix>:{<chat>}:readers present while a reader of the chat is, PX reader ttl
    <prefix>:interest         sorted set of chats, score = interest expiry (server ms)

Noting interest is two scripts, never one: the ref lives in the chat's slot, the set in its
own (Cluster rule: one slot per script). `RedisBus.record` and the push records read
`readers` in the chat's own scripts. It must not know what a ref is nor touch other keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus import _scripts
from app.bus._calls import Runner
from app.bus._hub import check_chat


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisInterest:
    """`Interest` through the bus's client, its bounded calls and its chat keys (`key`)."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        calls: Runner,
        *,
        prefix: str,
        key: Callable[[str, str], str],
    ) -> None:
        self._redis = redis
        self._calls = calls
        self._key = key
        self._interest = f"{prefix}:interest"
        self._note_ref = redis.register_script(_scripts.NOTE_REF)
        self._note_interest = redis.register_script(_scripts.NOTE_INTEREST)
        self._live_interest = redis.register_script(_scripts.LIVE_INTEREST)

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        ref_key = self._key(check_chat(chat), "ref")
        interest = self._interest

        # Two scripts, not one: the ref lives in the chat's slot, the set in its own.
        async def both() -> None:
            await asyncio.gather(
                self._note_ref(keys=[ref_key], args=[ref, _ms(ttl_s)]),
                self._note_interest(keys=[interest], args=[chat, _ms(ttl_s)]),
            )

        await self._calls.run(both)

    async def interested(self) -> dict[str, str]:
        interest = self._interest

        async def load() -> dict[str, str]:
            chats: list[str] = await self._live_interest(keys=[interest], args=[])
            if not chats:
                return {}
            pipe = self._redis.pipeline(transaction=False)
            for chat in chats:
                pipe.get(self._key(chat, "ref"))
            refs: list[str | None] = await pipe.execute()
            return {c: r for c, r in zip(chats, refs, strict=True) if r is not None}

        return await self._calls.run(load)

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        keys = [self._key(check_chat(chat), "readers")]
        # The same "longest expiry wins" SET as the interest ref.
        await self._calls.run(lambda: self._note_ref(keys=keys, args=["1", _ms(ttl_s)]))
