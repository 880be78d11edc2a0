"""Abuse-limit counting behind `guards.Limits` in this process (`MemoryLimits`): token
buckets, holder counts and bounded sets in plain dicts, bounded in the keys they remember.

Owns the arithmetic of a token bucket (`take_token`) and of a bounded set (`admit_member`),
which the Redis scripts (`_limits_redis`, `_scripts`) follow. Every method runs without an
`await` between read and write, so each one is atomic on the event loop. It must not be shared
between processes nor import redis (the memory bus runs without it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


def take_token(
    tokens: float, elapsed_s: float, rate_per_s: float, burst: float
) -> tuple[float, float]:
    """A token bucket `elapsed_s` after it held `tokens`: (tokens left, seconds to wait).
    Takes one token when there is one (wait 0), else takes nothing."""
    tokens = min(burst, tokens + max(0.0, elapsed_s) * rate_per_s)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate_per_s


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


def admit_member(
    members: dict[str, float], member: str, now: float, ttl_s: float, limit: int
) -> bool:
    """The bounded set of `admit`, in place: expired members dropped, then `member` (re)admitted
    until now + ttl_s if it is one already or there is room. Pure but for `members`."""
    for gone in [m for m, until in members.items() if until <= now]:
        del members[gone]
    if member not in members and len(members) >= limit:
        return False
    members[member] = max(members.get(member, 0.0), now + ttl_s)
    return True


class MemoryLimits:
    """`Limits` for one process. Bounded: the least recently seen buckets and sets are
    forgotten first, which only ever errs towards letting a client through."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._holders: dict[tuple[str, str], int] = {}
        self._sets: OrderedDict[tuple[str, str], dict[str, float]] = OrderedDict()

    async def admit(self, name: str, key: str, member: str, ttl_s: float, limit: int) -> bool:
        members = self._sets.pop((name, key), None) or {}
        admitted = admit_member(members, member, time.monotonic(), ttl_s, limit)
        if members:
            self._sets[(name, key)] = members
            if len(self._sets) > self._max_keys:
                self._sets.popitem(last=False)
        return admitted

    async def take(self, name: str, key: str, per_minute: float, burst: int) -> float:
        now = time.monotonic()
        bucket = self._buckets.pop((name, key), None) or _Bucket(float(burst), now)
        bucket.tokens, wait = take_token(bucket.tokens, now - bucket.at, per_minute / 60, burst)
        bucket.at = now
        self._buckets[(name, key)] = bucket
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    async def occupy(self, name: str, key: str, limit: int) -> bool:
        count = self._holders.get((name, key), 0)
        if count >= limit:
            return False
        self._holders[(name, key)] = count + 1
        return True

    def vacate(self, name: str, key: str) -> None:
        count = self._holders.get((name, key), 0) - 1
        if count <= 0:
            self._holders.pop((name, key), None)
        else:
            self._holders[(name, key)] = count
