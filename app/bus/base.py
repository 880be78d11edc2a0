"""The bus: what instances share about a chat, as three small protocols.

* `Lease`: who polls a chat. At most one holder per chat cluster-wide, with an expiry and a
  fencing epoch.
* `ChatCache`: the shared copy of a chat (transcript, state, cursors, upstream cookies,
  interest). Written by the lease holder through a fenced `commit`; read by everyone.
* `FanOut`: live delivery of committed events to subscribers on every instance.
* `Limits`: abuse limits (token buckets, holder counts) the fleet shares.
* `FleetStats` (`fleet.py`): decayed histograms of reply and join times the fleet has seen.

Chats are named by a *chat key*: an opaque string chosen by the caller (a digest of the upstream
id), never a client handle or the upstream id itself. This module defines contracts only; the
in-process (`memory.py`) and Redis (`redis.py`) implementations pass one contract test suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.bus.fleet import FleetStats
from app.events import ChatEvent
from app.models import ChatState, Message, UpstreamStatus


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of holding a chat's lease.

    `epoch` rises with every grant of the lease for the chat (while the bus keeps its data);
    `token` is unique per grant. A fence stops being valid when the lease expires, is released
    or is granted to someone else, even if its holder does not know it yet.
    """

    chat: str
    token: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """The shared state of one chat as last committed.

    `cursor` is the highest upstream index stored (0 when none). `ended` is set once the chat is
    over for the customer. `completed` is set when the customer sent Complete (the upstream may
    still report the chat alive for a moment). `indexless_cursor` is the highest index already
    given to this chat's index-less readers. `readers` is True while a reader's presence
    noted anywhere in the fleet (`note_reader`) has not expired.
    """

    cursor: int = 0
    state: ChatState | None = None
    status: UpstreamStatus = UpstreamStatus.OK
    ended: bool = False
    completed: bool = False
    indexless_cursor: int = 0
    cookies: dict[str, str] = field(default_factory=dict)
    readers: bool = False


@dataclass(frozen=True)
class TranscriptLimits:
    """Bounds of the cached transcripts (the upstream keeps them whole: what the cache drops,
    readers get from the upstream). Bytes are those of the messages' JSON text (UTF-8).

    `max_messages` and `max_bytes` per chat; `budget_bytes` for all chats (the process on the
    memory bus, the fleet on Redis); an ended chat's messages are dropped
    `ended_retention_s` after its end. These are the defaults of the `BFF_TRANSCRIPT_*` and
    `BFF_ENDED_RETENTION_S` settings."""

    max_messages: int = 500
    max_bytes: int = 256 * 1024
    budget_bytes: int = 256 * 1024 * 1024
    ended_retention_s: float = 300.0


class TranscriptMeter(Protocol):
    """What a bus reports of its cached transcripts (Prometheus, `metrics.py`)."""

    def transcript_held(self, nbytes: int) -> None:
        """Bytes of cached transcripts now: the process's (memory) or the fleet's (Redis)."""
        ...

    def transcript_evicted(self, reason: str, messages: int) -> None:
        """`messages` dropped from the cache: `chat_cap` (a chat's caps) or `budget`."""
        ...


@dataclass(frozen=True, slots=True)
class CachedMessages:
    """Cached messages after some index, and the cache's `floor` read with them: messages with
    an index <= floor may have been dropped from the cache (its caps, the budget, an ended
    chat's retention); those above it, up to the chat's cursor, are all here."""

    floor: int
    messages: list[Message]


class Lease(Protocol):
    """One poller per chat across the fleet.

    Guarantees:
    * `acquire` grants the lease to at most one caller per chat while the lease is live; it
      returns None when someone else holds it.
    * `renew` extends, in one round trip, each lease still held by its fence and returns those
      fences; a fence missing from the answer has lost its lease (or its renewal could not be
      confirmed) and its holder must stop publishing at once. It raises BusUnavailableError
      only when no renewal could be confirmed at all. (One call per process per period, not
      one per chat: an instance polling thousands of chats must not spend thousands of bus
      calls a second on leases. On a Redis Cluster: one round trip per node, all at once.)
    * `release` ends the lease only if the fence still holds it; releasing a lost lease is a
      no-op. After a release another instance may acquire immediately.
    * A lease nobody renews expires after its ttl, so a killed holder is replaced.
    """

    async def acquire(self, chat: str, ttl_s: float) -> Fence | None: ...

    async def renew(self, fences: Sequence[Fence], ttl_s: float) -> frozenset[Fence]: ...

    async def release(self, fence: Fence) -> None: ...


class ChatCache(Protocol):
    """The shared copy of each chat. The upstream stays the source of truth: losing this data
    loses nothing, it is rebuilt by polling from index 1.

    Guarantees:
    * `commit` is atomic and fenced: it writes nothing and returns None unless `fence` still
      holds the chat's lease. Otherwise it stores the messages whose index is above the stored
      cursor (ignoring the others, so a replay is harmless), in index order, advances the cursor,
      applies `state`/`status`/`ended` if given, and publishes the resulting events to `FanOut`
      in exactly that order: messages by index, then state, then status, then end. It returns
      the events it published (possibly empty).
    * `messages(after=N)` returns stored messages with index > N in index order;
      `transcript(after=N)` returns the same with the cache's floor, read atomically.
    * Entries expire `retention_s` after the chat's last commit; a chat never seen reads as an
      empty `ChatRecord`.
    * Bounded (`TranscriptLimits`): a commit never leaves a chat with more than
      `max_messages` messages or `max_bytes` bytes of message text stored; the oldest go
      first (a single message larger than `max_bytes` is not stored at all) and the floor
      rises to the highest index dropped. The ended chat's messages are dropped
      `ended_retention_s` after the commit that ended it (its record stays for the
      retention; the floor becomes its cursor). Over `budget_bytes` for all chats, whole
      transcripts are dropped, those expiring first (ended, then least recently committed)
      first: at once on the memory bus; on Redis within about a second of the commits that
      went over (the fleet's total is kept under one hash tag, `{transcripts}`).
    """

    async def commit(
        self,
        fence: Fence,
        messages: Sequence[Message] = (),
        *,
        state: ChatState | None = None,
        status: UpstreamStatus | None = None,
        ended: bool = False,
    ) -> list[ChatEvent] | None: ...

    async def record(self, chat: str) -> ChatRecord: ...

    async def messages(self, chat: str, after: int, limit: int = 1000) -> list[Message]: ...

    async def transcript(self, chat: str, after: int, limit: int = 1000) -> CachedMessages: ...

    async def claim_indexless(self, chat: str, upto: int) -> int:
        """Atomically set the index-less cursor to max(current, upto) and return the previous
        value, so concurrent index-less readers never get the same message twice."""
        ...

    async def set_cookies(self, chat: str, cookies: dict[str, str]) -> None:
        """Merge upstream cookies for the chat (an empty value deletes that cookie)."""
        ...

    async def mark_completed(self, chat: str) -> None: ...

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        """Someone cares about `chat` until now + ttl_s. `ref` is what a poller needs to reach
        the chat upstream (a client handle); it is returned by `interested`."""
        ...

    async def interested(self) -> dict[str, str]:
        """Chats with live interest anywhere in the fleet: chat key -> ref."""
        ...

    # -- reader presence ------------------------------------------------------------------

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        """A reader of `chat` (an open stream, a waiting long-poll, a recent read) is present
        until now + ttl_s; several notes keep the longest. `record(chat).readers` is True until
        then, on every instance. Independent of the chat's cached data: it works for a chat
        never committed and survives nothing but its own expiry."""
        ...


class Subscription(Protocol):
    """Events of one chat committed after `FanOut.subscribe` returned, in commit order.

    Delivery is at most once: when the implementation may have lost events (a reconnect to
    Redis, a full per-subscriber buffer), it yields one `EventKind.RESYNC` event and the
    subscriber re-reads the cache after the last index it saw. Buffers are bounded.
    """

    def __aiter__(self) -> AsyncIterator[ChatEvent]: ...

    def wake(self, event: ChatEvent) -> None:
        """Queue a marker for this subscriber alone (a heartbeat tick, a drain, a disconnect),
        behind what is already buffered; never blocks. Lets one waiter serve all wake-ups."""
        ...


class FanOut(Protocol):
    """Live delivery. One upstream connection per process (for Redis: one pub/sub connection
    shared by all subscriptions of the instance), never one per subscriber."""

    def subscribe(self, chat: str) -> AbstractAsyncContextManager[Subscription]: ...


# -- Limits (fleet-wide abuse limits) ----------------------------------------------------


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


# -- webhook outbox and push records (hooks) -----------------------------------------------


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


# -- Idempotency-Key (app/idempotency.py) ---------------------------------------------------


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


class Bus(
    Lease, ChatCache, FanOut, Outbox, PushRecords, Limits, IdempotencyStore, FleetStats, Protocol
):
    """All of them, plus pokes, lifecycle and health."""

    async def poke(self, chat: str) -> None:
        """Deliver one `EventKind.POKE` to the chat's subscribers on every instance (its
        poller listens for it); stores nothing. At most once, like all fan-out."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
