"""The bus's hook roles: what the webhooks (push notices, left messages, surveys) keep on it.

* `Outbox`: a durable queue of webhook deliveries shared by the fleet, one queue and quota
  per kind, and the values it hands out (`OutboxItem`, `Claim`, ...).
* `PushRecords`: per-chat push records (`PushState`), kept with the chat's data.

Contracts only; it must not do I/O, know the webhooks' payloads, nor import a backend
(`_outbox_memory`, `_outbox_redis` and the buses implement them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One webhook delivery to make. `kind` names its webhook and its quota (`push`,
    `offline`, ...: 1 to 16 of `a-z`, `0-9`, `_`, `-`). `id` names it fleet-wide: putting the
    same id again while it waits, or soon after it was delivered, stores nothing. `payload` is
    opaque to the bus. Its size, for quotas, is the UTF-8 bytes of id and payload."""

    id: str
    payload: str
    kind: str

    @property
    def size(self) -> int:
        return len(self.id.encode()) + len(self.payload.encode())


@dataclass(frozen=True, slots=True)
class OutboxQuota:
    """What one kind may hold at most, waiting or claimed: items, and their bytes."""

    max_items: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class OutboxHeld:
    """What one kind holds now (waiting or claimed), fleet-wide on Redis."""

    items: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox item handed to one delivery worker until `done`, `retry` or the claim's
    expiry. `token` proves the claim; `attempt` counts the claims of this item (1 first)."""

    id: str
    payload: str
    token: str
    attempt: int
    kind: str


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """What `outbox_claim` handed out, the seconds until the kind's next item falls due (None:
    none waits), and what the kind holds after the claim."""

    claims: list[Claim]
    next_due_s: float | None
    held: OutboxHeld


@dataclass(frozen=True, slots=True)
class PushState:
    """A chat's push record (written at RequestChat when the app gave a pushToken) with what
    the push hook needs to decide, read in one atomic step.

    `notified` is the highest message index already handled (notified, or seen by a reader);
    `end_notified` tells the same of the chat's end. `cursor` and `ended` are the chat's
    committed ones; `readers` is the reader presence of `ChatRecord.readers`."""

    push_token: str
    handle: str
    notified: int
    end_notified: bool
    cursor: int
    ended: bool
    readers: bool


class Outbox(Protocol):
    """A durable queue of webhook deliveries shared by the fleet: whichever instance enqueues,
    any instance's delivery worker may deliver, and nothing is lost when either dies. Each
    kind has its own queue and quota: one kind filled up never refuses or delays another.

    Guarantees:
    * `outbox_put` is idempotent by id: an item whose id is waiting, or was marked done within
      `done_ttl_s` (of `outbox_done`) and is still remembered, is not stored again (returns
      False). When storing it would take its kind beyond `quota` (items or bytes), it stores
      nothing and raises `OutboxFullError` naming the limit.
    * `outbox_claim(kind)` hands each due item of that kind (new, or whose retry delay passed)
      to one caller, earliest due first: it stays invisible to other claims for `claim_s`.
      Unless its claimer calls `outbox_done` or `outbox_retry` before then, it is due again
      (the claimer died) and its `attempt` rises. Its cost does not grow with the backlog
      (logarithmic in the items waiting).
    * `outbox_done` and `outbox_retry` act only while the claim's token still holds the item
      (False otherwise): `done` removes it for good and remembers its id for `done_ttl_s`, or
      until `remember` more ids of its kind were remembered after it, whichever comes first;
      `retry` makes it due after `delay_s`.
    * Items stay until done, across restarts of every instance (Redis: as durable as the
      server's persistence is configured).
    """

    async def outbox_put(self, item: OutboxItem, quota: OutboxQuota) -> bool: ...

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch: ...

    async def outbox_done(self, claim: Claim, *, done_ttl_s: float, remember: int) -> bool: ...

    async def outbox_retry(self, claim: Claim, delay_s: float) -> bool: ...

    async def outbox_held(self, kind: str) -> OutboxHeld:
        """What the kind holds (waiting or claimed)."""
        ...


class PushRecords(Protocol):
    """Per-chat push records, kept with the chat's data (same retention, same slot).

    Guarantees:
    * `push_register` creates or updates the record (`notified` starts at 0).
    * `push_settle` returns None for a chat without a record. Otherwise, atomically: if a
      reader is present, every message committed so far and the end if committed count as
      handled (nobody is to be notified of what a reader saw); it returns the record after that.
    * `push_advance` raises `notified` to `upto` (never lowers it) and sets `end_notified`
      if `ended`, so concurrent or replayed hooks never notify the same index twice.
    """

    async def push_register(self, chat: str, *, handle: str, push_token: str) -> None: ...

    async def push_settle(self, chat: str) -> PushState | None: ...

    async def push_advance(self, chat: str, upto: int, *, ended: bool) -> None: ...
