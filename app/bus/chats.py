"""The bus's chat roles: who polls a chat, and the shared copy of it everyone reads.

* `Lease`: who polls a chat. At most one holder per chat fleet-wide, with an expiry and a
  fencing epoch (`Fence`).
* `ChatCache`: the shared copy of a chat (transcript, state, cursors, upstream cookies).
  Written by the lease holder through a fenced `commit`; read by everyone.
* `Interest`: who cares about a chat: the interest that keeps it polled, and the presence
  of its readers.

Chats are named by a *chat key*: an opaque string chosen by the caller (a digest of the upstream
id), never a client handle or the upstream id itself. This module defines contracts and the
values they carry only; it must not do I/O nor import a backend (`memory.py`, `redis.py`
implement it, and one contract suite, `tests/bus/`, holds both to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.events import ChatEvent
from app.models import ChatState, TranscriptEntry, UpstreamStatus


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
    noted anywhere in the fleet (`Interest.note_reader`) has not expired.
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
    messages: list[TranscriptEntry]


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
        messages: Sequence[TranscriptEntry] = (),
        *,
        state: ChatState | None = None,
        status: UpstreamStatus | None = None,
        ended: bool = False,
    ) -> list[ChatEvent] | None: ...

    async def record(self, chat: str) -> ChatRecord: ...

    async def messages(self, chat: str, after: int, limit: int = 1000) -> list[TranscriptEntry]: ...

    async def transcript(self, chat: str, after: int, limit: int = 1000) -> CachedMessages: ...

    async def claim_indexless(self, chat: str, upto: int) -> int:
        """Atomically set the index-less cursor to max(current, upto) and return the previous
        value, so concurrent index-less readers never get the same message twice."""
        ...

    async def set_cookies(self, chat: str, cookies: dict[str, str]) -> None:
        """Merge upstream cookies for the chat (an empty value deletes that cookie)."""
        ...

    async def mark_completed(self, chat: str) -> None: ...


class Interest(Protocol):
    """Who cares about a chat, fleet-wide: the interest that keeps it polled (the registry
    sweeps it) and the presence of its readers (which sets the poll schedule).

    Guarantees:
    * `note_interest` keeps `chat` in `interested()` until now + ttl_s; several notes keep
      the longest. `interested()` lists the chats with live interest anywhere in the fleet.
    * `note_reader` sets `ChatCache.record(chat).readers` until its ttl runs out.
    """

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        """Someone cares about `chat` until now + ttl_s. `ref` is what a poller needs to reach
        the chat upstream (a client handle); it is returned by `interested`."""
        ...

    async def interested(self) -> dict[str, str]:
        """Chats with live interest anywhere in the fleet: chat key -> ref."""
        ...

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        """A reader of `chat` (an open stream, a waiting long-poll, a recent read) is present
        until now + ttl_s; several notes keep the longest. `record(chat).readers` is True until
        then, on every instance. Independent of the chat's cached data: it works for a chat
        never committed and survives nothing but its own expiry."""
        ...
