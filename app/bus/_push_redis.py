"""`hooks.PushRecords` on Redis: a chat's push record, kept with the chat's data.

    <prefix>:{<chat>}:push    hash: push token, handle, notified watermark, end notified

The record shares the chat's hash tag (`RedisBus._key`), so `push_settle` reads it with the
chat's `readers` and `meta` in one atomic script, and it expires with the chat's retention.
It must not know what a notice says nor touch keys of other chats.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus import _scripts
from app.bus._calls import Runner
from app.bus._hub import check_chat
from app.bus.hooks import PushState


class RedisPushRecords:
    """`PushRecords` through the bus's client, its bounded calls and its chat keys (`key`)."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        calls: Runner,
        *,
        key: Callable[[str, str], str],
        retention_ms: int,
    ) -> None:
        self._calls = calls
        self._key = key
        self._retention_ms = retention_ms
        self._register = redis.register_script(_scripts.PUSH_REGISTER)
        self._settle = redis.register_script(_scripts.PUSH_SETTLE)
        self._advance = redis.register_script(_scripts.PUSH_ADVANCE)

    async def push_register(self, chat: str, *, handle: str, push_token: str) -> None:
        keys = [self._key(check_chat(chat), "push")]
        args: list[str | int] = [push_token, handle, self._retention_ms]
        await self._calls.run(lambda: self._register(keys=keys, args=args))

    async def push_settle(self, chat: str) -> PushState | None:
        keys = [self._key(check_chat(chat), n) for n in ("push", "readers", "meta")]
        row = await self._calls.run(lambda: self._settle(keys=keys, args=[self._retention_ms]))
        if row is None:
            return None
        readers, notified, end_notified, cursor, ended, token, handle = row
        return PushState(
            push_token=str(token),
            handle=str(handle),
            notified=int(notified),
            end_notified=bool(int(end_notified)),
            cursor=int(cursor),
            ended=bool(int(ended)),
            readers=bool(int(readers)),
        )

    async def push_advance(self, chat: str, upto: int, *, ended: bool) -> None:
        keys = [self._key(check_chat(chat), "push")]
        args: list[str | int] = [int(upto), "1" if ended else "0", self._retention_ms]
        await self._calls.run(lambda: self._advance(keys=keys, args=args))
