"""Calls to Redis for the Redis bus: each bounded in time, retried through a failover when a
customer waits for it, and script calls batched one pipeline per node.

Owns what counts as a passing failover (connection refused, CLUSTERDOWN, READONLY, a Sentinel
without a master, redis-py's Cluster client tripping over its own topology refresh) and the
NOSCRIPT reload. It must not know keys or chats; errors leave it as `BusUnavailableError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis as redis_py
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.bus._hub import raise_if_cancelled
from app.bus._link import FAILURES
from app.errors import BusUnavailableError

log = logging.getLogger("chat_bff.bus")
T = TypeVar("T")

# What a failover looks like from a client: worth retrying until the wait runs out.
_PASSING = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,  # CLUSTERDOWN, MASTERDOWN
    TryAgainError,
    ReadOnlyError,  # a demoted master still answering
    RedisClusterException,  # no node reachable, slot not covered
    OSError,
    TimeoutError,
)
_LASTING = (AuthenticationError, AuthorizationError)
_REDIS_PY = os.path.dirname(redis_py.__file__)


def _library_race(exc: BaseException) -> bool:
    """redis-py's asyncio Cluster client can trip over its own connections when a topology
    refresh (it runs one after any connection error) overlaps commands in flight: an
    AttributeError or TypeError from inside redis-py, or a RuntimeError from the event loop
    under it (uvloop's "handler is closed" on a transport a dying master just closed). Raised
    through redis-py's frames, these are worth retrying like a failover."""
    if not isinstance(exc, AttributeError | TypeError | RuntimeError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_REDIS_PY):
            return True
        tb = tb.tb_next
    return False


class Runner(Protocol):
    """What the bus's parts (limits, outbox) borrow from its `Calls`: bounded calls and
    batched scripts."""

    async def run(self, op: Callable[[], Awaitable[T]], *, wait: bool = True) -> T: ...

    async def eval_many(
        self, script: AsyncScript, calls: Sequence[tuple[list[str], list[str | int]]]
    ) -> list[Any]: ...


class Calls:
    """Runs operations on one command client (plain, Sentinel master or Cluster); a `Runner`."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        op_timeout_s: float,
        failover_wait_s: float,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._timeout = op_timeout_s
        self._failover_wait = failover_wait_s
        self._on_error = on_error  # counts failed operations (metrics); must not raise

    async def run(self, op: Callable[[], Awaitable[T]], *, wait: bool = True) -> T:
        """`op` bounded by the op timeout per attempt; with `wait`, retried through a failover
        for up to `failover_wait_s`. Redis errors become BusUnavailableError."""
        try:
            return await self._attempts(op, wait)
        except BusUnavailableError:
            if self._on_error is not None:
                self._on_error()
            raise

    async def _attempts(self, op: Callable[[], Awaitable[T]], wait: bool) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._failover_wait if wait else 0.0)
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    if isinstance(self._redis, RedisCluster):
                        # Load the slot map before commands run concurrently: redis-py's
                        # asyncio Cluster client must not initialize inside many at once.
                        await self._redis.initialize()
                    result = await op()
                raise_if_cancelled()
                return result
            except _LASTING as exc:
                raise BusUnavailableError() from exc
            except _PASSING as exc:
                if loop.time() + delay >= deadline:
                    raise BusUnavailableError() from exc
            except FAILURES as exc:
                raise BusUnavailableError() from exc
            except (AttributeError, TypeError, RuntimeError) as exc:
                if not _library_race(exc):
                    raise
                log.warning("redis-py cluster client race (%r); retrying", exc)
                if loop.time() + delay >= deadline:
                    raise BusUnavailableError() from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def eval_many(
        self, script: AsyncScript, calls: Sequence[tuple[list[str], list[str | int]]]
    ) -> list[Any]:
        """One pipelined EVALSHA per call (each call's keys in one slot): one round trip per
        node, all nodes at once. Answers in order; an error answer is returned, not raised,
        except when the whole pipeline failed. Call through `run`."""

        async def send(todo: list[int]) -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    keys, args = calls[i]
                    # Not `script(client=pipe)`: redis-py refuses script calls on a Cluster
                    # pipeline because it cannot load them there; NOSCRIPT is handled below.
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return list(await pipe.execute(raise_on_error=False))

        answers: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            if not todo:
                break
            missing = []
            for i, answer in zip(todo, await send(todo), strict=True):
                if isinstance(answer, NoScriptError) and not attempt:
                    missing.append(i)
                else:
                    answers[i] = answer
            if missing:
                # A node that never ran it (a new primary after a failover, a flushed cache).
                await self._redis.script_load(script.script)
            todo = missing
        return answers
