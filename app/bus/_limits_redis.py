"""Abuse-limit counting behind `guards.Limits` shared by the fleet through Redis
(`RedisLimits`): token buckets, holder counts and bounded sets.

Data model (each script touches ONE key, so each call is one Cluster slot):

    <prefix>:rate:{<digest>}   hash: tokens, at (server seconds); PEXPIRE = time to refill
    <prefix>:lim:{<digest>}    hash: <instance> = its holder count, <instance># = write sequence
    <prefix>:alive:{<instance>} liveness of an instance, PX holder ttl, refreshed every ttl/3
    <prefix>:set:{<digest>}    sorted set: member -> its expiry (server ms); at most `limit`

`<digest>` hashes the limit's name and key (a client IP never appears in a key name). Holder
counts cost nothing while nobody is near a limit: an instance writes its absolute count on
every occupy and (batched, in the background) after vacates. When a count is at its limit,
the occupier checks which other counted instances are still alive and drops the counts of the
dead ones (SIGKILLed instances), so leaked counts stop counting within the holder ttl. If an
instance finds its own liveness key gone (Redis lost data, or the instance stalled past its
ttl), it writes all its counts again.

It must not know HTTP or what the keys mean; errors surface as `BusUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.bus import _scripts
from app.bus._calls import Runner
from app.errors import BffError

log = logging.getLogger("chat_bff.bus")
# Counter keys outlive their last write by this much: holders of a stream open for longer
# than this without any open or close on the same key are forgotten (they undercount).
KEY_TTL_MS = 24 * 3600 * 1000


def _digest(name: str, key: str) -> str:
    return hashlib.blake2b(f"{name}\0{key}".encode(), digest_size=12).hexdigest()


class RedisLimits:
    """`Limits` through Redis. Owns the liveness heartbeat and the background writer of counts
    after vacates; both start with the first occupy and end with `aclose`."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        runner: Runner,
        *,
        prefix: str,
        instance: str,
        holder_ttl_s: float,
    ) -> None:
        self._redis = redis
        self._runner = runner
        self._prefix = prefix
        self._instance = instance
        self._ttl_ms = max(1, round(holder_ttl_s * 1000))
        self._take = redis.register_script(_scripts.TAKE)
        self._admit = redis.register_script(_scripts.ADMIT)
        self._occupy = redis.register_script(_scripts.OCCUPY)
        self._set = redis.register_script(_scripts.SET_HOLDERS)
        self._seq = itertools.count(int(time.time() * 1000) * 1000)
        self._counts: dict[str, int] = {}  # counter key -> this instance's holders
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._alive_written = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def _counter(self, name: str, key: str) -> str:
        return f"{self._prefix}:lim:{{{_digest(name, key)}}}"

    def _alive(self, instance: str) -> str:
        return f"{self._prefix}:alive:{{{instance}}}"

    async def take(self, name: str, key: str, per_minute: float, burst: int) -> float:
        keys = [f"{self._prefix}:rate:{{{_digest(name, key)}}}"]
        args: list[str | int] = [repr(per_minute / 60), burst]
        wait = await self._runner.run(lambda: self._take(keys=keys, args=args))
        return float(wait)

    async def admit(self, name: str, key: str, member: str, ttl_s: float, limit: int) -> bool:
        keys = [f"{self._prefix}:set:{{{_digest(name, key)}}}"]
        args: list[str | int] = [member, max(1, round(ttl_s * 1000)), int(limit)]
        return bool(int(await self._runner.run(lambda: self._admit(keys=keys, args=args))))

    async def occupy(self, name: str, key: str, limit: int) -> bool:
        self._start()
        if not self._alive_written:
            # Before this instance's first count: an occupier elsewhere that finds a count
            # without a liveness key takes its instance for dead.
            await self._runner.run(self._beat)
        counter = self._counter(name, key)
        # One write of this instance's count per counter at a time: the count is absolute,
        # so two in flight could land out of order.
        async with self._locked(counter):
            count = self._counts.get(counter, 0) + 1
            dead: list[str] = []
            for _ in range(2):
                args: list[str | int] = [self._instance, next(self._seq), count, limit]
                args += [KEY_TTL_MS, *dead]
                answer = await self._runner.run(
                    functools.partial(self._occupy, keys=[counter], args=args)
                )
                if not isinstance(answer, list):
                    # Relative: a vacate during the round trip has changed the count (and
                    # marked it for the writer, which runs after this).
                    self._counts[counter] = self._counts.get(counter, 0) + 1
                    return True
                dead = await self._dead(answer)
                if not dead:
                    break
            return False

    @contextlib.asynccontextmanager
    async def _locked(self, counter: str) -> AsyncIterator[None]:
        lock = self._locks.get(counter)
        if lock is None:
            lock = self._locks[counter] = asyncio.Lock()
        self._lock_users[counter] += 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[counter] -= 1
            if not self._lock_users[counter]:
                del self._lock_users[counter]
                del self._locks[counter]

    async def _dead(self, instances: list[str]) -> list[str]:
        """The instances among these whose liveness key is gone."""
        if not instances:
            return []

        async def check() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for instance in instances:
                    pipe.exists(self._alive(instance))
                return list(await pipe.execute())

        alive = await self._runner.run(check)
        return [i for i, n in zip(instances, alive, strict=True) if not n]

    def vacate(self, name: str, key: str) -> None:
        self._vacate(self._counter(name, key))

    def _vacate(self, counter: str) -> None:
        count = self._counts.get(counter, 0)
        if count <= 0:
            return
        if count == 1:
            del self._counts[counter]
        else:
            self._counts[counter] = count - 1
        self._dirty.add(counter)
        self._wake.set()

    # -- background -----------------------------------------------------------------------

    def _start(self) -> None:
        if not self._tasks and not self._closed:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._heartbeat(), name="limits heartbeat"),
                loop.create_task(self._writer(), name="limits writer"),
            ]

    async def _write(self, counters: Sequence[str]) -> None:
        calls: list[tuple[list[str], list[str | int]]] = [
            ([c], [self._instance, next(self._seq), self._counts.get(c, 0), 0, KEY_TTL_MS])
            for c in counters
        ]
        await self._runner.run(lambda: self._runner.eval_many(self._set, calls))

    async def _writer(self) -> None:
        """Writes the counts changed by vacates, batched: one round trip per node and round.
        A counter an occupy is writing right now waits for the next round."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            async with contextlib.AsyncExitStack() as held:
                batch = []
                for counter in list(self._dirty):
                    if counter not in self._locks:
                        await held.enter_async_context(self._locked(counter))
                        batch.append(counter)
                self._dirty.difference_update(batch)
                try:
                    await self._write(batch)
                except BffError:
                    self._dirty.update(batch)
            if self._dirty:
                await asyncio.sleep(0.05)
                self._wake.set()

    async def _beat(self) -> str | None:
        """Refresh this instance's liveness; the value it had (None: it was gone)."""
        key = self._alive(self._instance)
        before = await self._redis.set(key, "1", px=self._ttl_ms, get=True)
        self._alive_written = True
        return None if before is None else str(before)

    async def _heartbeat(self) -> None:
        period = self._ttl_ms / 3000
        while not self._closed:
            try:
                beaten = self._alive_written
                before = await self._runner.run(self._beat, wait=False)
                if before is None and beaten and self._counts:
                    log.info("holder counts of this instance were lost; writing them again")
                    self._dirty.update(self._counts)
                    self._wake.set()
            except BffError as error:
                log.warning("limits heartbeat failed: %s", type(error).__name__)
            await asyncio.sleep(period)

    async def aclose(self) -> None:
        """Stop the tasks; write what vacates changed and end this instance's liveness, so
        its remaining counts stop counting at once."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            with contextlib.suppress(BffError):
                if self._dirty:
                    await self._write(list(self._dirty))
                await self._runner.run(lambda: self._redis.delete(self._alive(self._instance)))
