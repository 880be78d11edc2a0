"""The bus's guard roles: what keeps clients from overloading the service or repeating work.

* `Limits`: abuse limits (token buckets, holder counts, bounded sets) the fleet shares; what
  each limit means is `app/edge/limits.py`'s and the routes'.
* `IdempotencyStore`: requests made once across the fleet (`Idempotency-Key`,
  `app/edge/idempotency.py`), bounded per client and in total.

Contracts only; it must not do I/O nor import a backend (`_limits_*` and `_idempotency_*`
implement them for each bus).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class Limits(Protocol):
    """Abuse limits shared by the fleet: counted in Redis on a Redis bus, so N instances
    enforce one limit, not N; in the process on the memory bus. `name` keeps limits apart;
    `key` is opaque (a client IP, a chat key).

    Guarantees:
    * `take` is a token bucket per (name, key): `burst` tokens, refilled at `per_minute`/60 a
      second. It takes one token and returns 0.0, or, with none left, takes nothing and
      returns the seconds until one is. Atomic across the fleet.
    * `occupy` counts one more holder of (name, key) and returns True when the count stays
      within `limit` across the fleet; otherwise it counts nothing and returns False.
    * `vacate` counts one holder of this instance fewer; it never waits nor fails (a Redis bus
      writes it in the background, promptly). More vacates than occupies are ignored.
    * Holders counted by an instance that dies without vacating (SIGKILL) stop counting
      within the bus's holder ttl.
    * `admit` keeps a set of at most `limit` live members per (name, key): `member` is
      (re)admitted, live until now + `ttl_s` (never shortened), when it is a live member
      already or fewer than `limit` others are; it returns False and changes nothing when
      `limit` others are. Members expire by themselves. Atomic across the fleet.
    """

    async def take(self, name: str, key: str, per_minute: float, burst: int) -> float: ...

    async def admit(self, name: str, key: str, member: str, ttl_s: float, limit: int) -> bool: ...

    async def occupy(self, name: str, key: str, limit: int) -> bool: ...

    def vacate(self, name: str, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """What `idempotency_begin` found under a key.

    * "new": the caller now holds the key (`token`) and must finish or abandon it.
    * "in_flight": a request with the same fingerprint holds it and has not finished.
    * "done": `answer` is what the first request answered.
    * "mismatch": the key was taken by a request with another fingerprint.
    * "full": the key is free, but its client (`limit` "client") or the store (`limit`
      "total") holds as many entries as allowed; one frees in about `retry_after_s`.
    * "unkept": the store is full, but its client holds fewer than `floor_per_client`
      entries: the request may run, and nothing is held for it (no claim, no answer).
    """

    state: Literal["new", "in_flight", "done", "mismatch", "full", "unkept"]
    token: str = ""
    answer: str | None = None
    retry_after_s: float = 0.0
    limit: Literal["", "client", "total"] = ""


class IdempotencyStore(Protocol):
    """Requests made once across the fleet, whatever instance a retry reaches. A key belongs
    to a client: `client` and `key` are opaque digests chosen by the caller (no braces), and
    one key of two clients names two entries. Entries live apart from every chat.

    Guarantees:
    * `idempotency_begin` is atomic fleet-wide: of any number of concurrent callers with one
      client and key, exactly one gets "new"; the others get "in_flight" (same fingerprint)
      or "mismatch" (another one) until the holder finishes or abandons the key, or its claim
      expires `in_flight_s` after it was taken (a holder that died does not block the key
      for ever). Once finished, every caller gets "done" with the stored answer, or
      "mismatch", until the answer expires `keep_s` after it was stored.
    * Bounded: a key not held yet is refused ("full") while its client holds
      `max_per_client` entries (claims and answers, counted exactly), or while the store
      holds `max_total` stored answers (this process's on the memory bus; the fleet's on
      Redis, counted in time buckets, so an answer may count up to `IDEMPOTENCY_BUCKET_S`
      past its expiry; an instance sees its own answers at once and the other instances'
      up to `IDEMPOTENCY_COUNT_TTL_S` late). Claims in flight do not count towards
      `max_total`, so it may be passed by as many requests as run at once. Keys already
      held are answered as usual at the caps. At `max_total`, a client holding fewer than
      `floor_per_client` entries gets "unkept" instead of "full" (nothing held): clients
      filling the store cannot refuse everyone else's requests.
    * `idempotency_finish` stores `answer` only while `token` still holds the key, and says
      whether it did; `idempotency_abandon` frees the key only while `token` still holds it.
      A holder whose claim expired and was taken by another can neither store nor free it.
    * `idempotency_size` is the count `max_total` is checked against, read now.
    """

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
    ) -> IdempotencyClaim: ...

    async def idempotency_finish(
        self, client: str, key: str, token: str, answer: str, keep_s: float
    ) -> bool: ...

    async def idempotency_abandon(self, client: str, key: str, token: str) -> None: ...

    async def idempotency_size(self) -> int: ...


# The fleet-wide count of stored answers is kept per expiry bucket of this many seconds, and
# read by each instance at most this often (both: the Redis bus; the memory bus is exact).
IDEMPOTENCY_BUCKET_S = 10.0
IDEMPOTENCY_COUNT_TTL_S = 1.0
