"""The in-process bus: every role of `base.Bus` for the embedded one-instance mode.

Owns all shared chat state of a single process in plain dicts. Every method runs without an
`await` between its read and its write, so each one is atomic on the event loop exactly as the
Redis scripts are atomic on the server. Leases and retention run on `time.monotonic()`.
It must not be used by more than one process (nothing here is visible to another instance) and
must not block: delivery to subscribers goes through bounded queues (`_hub`). Nothing it
imports may load redis: a one-process deployment runs without the Redis client.

Events are built by `app.events`, as the Redis bus's COMMIT script builds them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.bus import base
from app.bus._hub import LocalHub, LocalSubscription, check_chat
from app.bus._idempotency_memory import MemoryIdempotency
from app.bus._limits_memory import MemoryLimits
from app.bus._outbox_memory import MemoryOutbox
from app.bus._parts import DelegatedRoles
from app.bus._transcripts import MemoryTranscripts
from app.bus.base import Bus
from app.bus.chats import CachedMessages, ChatRecord, Fence, TranscriptLimits, TranscriptMeter
from app.bus.fleet import MemoryFleetStats
from app.bus.hooks import PushState
from app.events import END, POKE, ChatEvent, message_event, state_event, status_event
from app.models import ChatState, TranscriptEntry, UpstreamStatus

# How often expired chats are swept out, at most; reads skip expired entries regardless.
_SWEEP_EVERY_S = 30.0
# A timer may fire a little early (the loop's clock resolution): a due check just after.
_TIMER_SLACK_S = 0.05


@dataclass(slots=True)
class _Chat:
    expires: float
    epoch: int = 0
    cursor: int = 0
    state: ChatState | None = None
    status: UpstreamStatus = UpstreamStatus.OK
    ended: bool = False
    completed: bool = False
    indexless_cursor: int = 0
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Lease:
    token: str
    expires: float


class MemoryBus(DelegatedRoles):
    """`Bus` for one process. `Limits`, `Outbox`, `IdempotencyStore` and `FleetStats` are
    parts of its own (`_parts`); the chat roles, fan-out and push records are here."""

    def __init__(
        self,
        *,
        retention_s: float = base.RETENTION_S,
        subscriber_buffer: int = base.SUBSCRIBER_BUFFER,
        transcripts: TranscriptLimits | None = None,
        meter: TranscriptMeter | None = None,
        history_half_life_s: float = base.HISTORY_HALF_LIFE_S,
    ) -> None:
        self._retention_s = retention_s
        self._fleet = MemoryFleetStats(history_half_life_s)
        # Messages are kept apart from the records, within their bounds (_transcripts.py).
        self._logs = MemoryTranscripts(transcripts or TranscriptLimits(), meter)
        self._hub = LocalHub(subscriber_buffer)
        self._chats: dict[str, _Chat] = {}
        self._leases: dict[str, _Lease] = {}
        self._interest: dict[str, tuple[str, float]] = {}
        self._readers: dict[str, float] = {}
        self._hooks = _HooksState()
        self._outbox = MemoryOutbox()
        self._idempotency = MemoryIdempotency()
        self._next_sweep = time.monotonic() + _SWEEP_EVERY_S
        self._closed = False
        self._limits = MemoryLimits()

    # -- storage helpers ------------------------------------------------------------------

    def _get(self, chat: str, now: float) -> _Chat | None:
        entry = self._chats.get(chat)
        if entry is not None and entry.expires <= now:
            del self._chats[chat]
            self._logs.forget(chat)
            return None
        return entry

    def _touch(self, chat: str, now: float) -> _Chat:
        """The chat's entry for writing, with its retention restarted."""
        self._sweep(now)
        entry = self._get(chat, now)
        if entry is None:
            entry = self._chats[chat] = _Chat(expires=now)
        entry.expires = now + self._retention_s
        return entry

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY_S
        for chat in [c for c, e in self._chats.items() if e.expires <= now]:
            del self._chats[chat]
            self._logs.forget(chat)
        self._logs.sweep(now)
        for chat in [c for c, lease in self._leases.items() if lease.expires <= now]:
            del self._leases[chat]
        for chat in [c for c, (_, exp) in self._interest.items() if exp <= now]:
            del self._interest[chat]
        for chat in [c for c, exp in self._readers.items() if exp <= now]:
            del self._readers[chat]

    def _holder(self, chat: str, now: float) -> _Lease | None:
        lease = self._leases.get(chat)
        if lease is not None and lease.expires <= now:
            del self._leases[chat]
            return None
        return lease

    # -- Lease ----------------------------------------------------------------------------

    async def acquire(self, chat: str, ttl_s: float) -> Fence | None:
        check_chat(chat)
        now = time.monotonic()
        if self._holder(chat, now) is not None:
            return None
        entry = self._touch(chat, now)
        entry.epoch += 1
        token = secrets.token_hex(16)
        self._leases[chat] = _Lease(token, now + ttl_s)
        return Fence(chat=chat, token=token, epoch=entry.epoch)

    async def renew(self, fences: Sequence[Fence], ttl_s: float) -> frozenset[Fence]:
        now = time.monotonic()
        held = []
        for fence in fences:
            lease = self._holder(fence.chat, now)
            if lease is not None and lease.token == fence.token:
                self._leases[fence.chat] = _Lease(lease.token, now + ttl_s)
                held.append(fence)
        return frozenset(held)

    async def release(self, fence: Fence) -> None:
        lease = self._holder(fence.chat, time.monotonic())
        if lease is not None and lease.token == fence.token:
            del self._leases[fence.chat]

    # -- ChatCache ------------------------------------------------------------------------

    async def commit(
        self,
        fence: Fence,
        messages: Sequence[TranscriptEntry] = (),
        *,
        state: ChatState | None = None,
        status: UpstreamStatus | None = None,
        ended: bool = False,
    ) -> list[ChatEvent] | None:
        now = time.monotonic()
        lease = self._holder(fence.chat, now)
        if lease is None or lease.token != fence.token:
            return None
        entry = self._touch(fence.chat, now)
        events: list[ChatEvent] = []
        new: list[TranscriptEntry] = []
        for message in sorted(messages, key=lambda m: m.index):
            if message.index <= entry.cursor:
                continue
            new.append(message)
            events.append(message_event(message, entry.cursor))
            entry.cursor = message.index
        if new:
            self._logs.append(fence.chat, new)
        # State, status and end are published on change only, so a replayed commit (or a
        # periodic state refresh) does not wake every viewer for nothing.
        if state is not None and state != entry.state:
            entry.state = state
            events.append(state_event(state))
        if status is not None and status != entry.status:
            entry.status = status
            events.append(status_event(status))
        if ended and not entry.ended:
            entry.ended = True
            self._logs.ended(fence.chat, now)
            # Dropped at its time even if nothing touches the bus then (no await: a timer).
            asyncio.get_running_loop().call_later(
                self._logs.ended_retention_s + _TIMER_SLACK_S,
                self._ended_retention_over,
                fence.chat,
            )
            events.append(END)
        self._hub.deliver(fence.chat, events)
        return events

    async def record(self, chat: str) -> ChatRecord:
        now = time.monotonic()
        entry = self._get(chat, now)
        readers = self._readers.get(chat, 0.0) > now
        if entry is None:
            return ChatRecord(readers=readers)
        return ChatRecord(
            cursor=entry.cursor,
            state=entry.state,
            status=entry.status,
            ended=entry.ended,
            completed=entry.completed,
            indexless_cursor=entry.indexless_cursor,
            cookies=dict(entry.cookies),
            readers=readers,
        )

    async def messages(self, chat: str, after: int, limit: int = 1000) -> list[TranscriptEntry]:
        return (await self.transcript(chat, after, limit)).messages

    def _ended_retention_over(self, chat: str) -> None:
        self._logs.expire_if_due(chat, time.monotonic())

    async def transcript(self, chat: str, after: int, limit: int = 1000) -> CachedMessages:
        now = time.monotonic()
        if self._get(chat, now) is None:
            return CachedMessages(0, [])
        return self._logs.read(chat, after, limit, now)

    async def claim_indexless(self, chat: str, upto: int) -> int:
        entry = self._touch(check_chat(chat), time.monotonic())
        previous = entry.indexless_cursor
        entry.indexless_cursor = max(previous, upto)
        return previous

    async def set_cookies(self, chat: str, cookies: dict[str, str]) -> None:
        entry = self._touch(check_chat(chat), time.monotonic())
        for name, value in cookies.items():
            if value:
                entry.cookies[name] = value
            else:
                entry.cookies.pop(name, None)

    async def mark_completed(self, chat: str) -> None:
        self._touch(check_chat(chat), time.monotonic()).completed = True

    # -- Interest (and reader presence) ---------------------------------------------------

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        check_chat(chat)
        now = time.monotonic()
        self._sweep(now)
        previous = self._interest.get(chat)
        until = now + ttl_s
        # Several parties may care about one chat: the longest interest wins.
        if previous is not None and previous[1] > until:
            until = previous[1]
        self._interest[chat] = (ref, until)

    async def interested(self) -> dict[str, str]:
        now = time.monotonic()
        return {chat: ref for chat, (ref, until) in self._interest.items() if until > now}

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        check_chat(chat)
        now = time.monotonic()
        self._sweep(now)
        self._readers[chat] = max(self._readers.get(chat, 0.0), now + ttl_s)

    # -- FanOut and Pokes -----------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, chat: str) -> AsyncIterator[LocalSubscription]:
        check_chat(chat)
        if self._closed:
            raise RuntimeError("bus closed")
        sub, _ = self._hub.add(chat)
        try:
            yield sub
        finally:
            self._hub.remove(sub)

    async def poke(self, chat: str) -> None:
        """Deliver one POKE event to the chat's subscribers (its poller asks the upstream at
        once). Stores nothing and needs no lease."""
        self._hub.deliver(check_chat(chat), [POKE])

    # -- lifecycle ------------------------------------------------------------------------

    async def ping(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._hub.close_all()

    # -- PushRecords (the outbox is a part: `_outbox_memory`) ------------------------------

    async def push_register(self, chat: str, *, handle: str, push_token: str) -> None:
        check_chat(chat)
        now = time.monotonic()
        records = self._hooks.push
        if now >= self._hooks.next_sweep:
            self._hooks.next_sweep = now + _SWEEP_EVERY_S
            for key in [k for k, r in records.items() if r.expires <= now]:
                del records[key]
        old = records.get(chat)
        notified, end = (old.notified, old.end) if old and old.expires > now else (0, False)
        records[chat] = _Push(push_token, handle, notified, end, now + self._retention_s)

    async def push_settle(self, chat: str) -> PushState | None:
        now = time.monotonic()
        record = self._hooks.push.get(check_chat(chat))
        if record is None or record.expires <= now:
            self._hooks.push.pop(chat, None)
            return None
        entry = self._get(chat, now)
        cursor = entry.cursor if entry else 0
        ended = entry.ended if entry else False
        readers = self._readers.get(chat, 0.0) > now
        if readers:
            record.notified = max(record.notified, cursor)
            record.end = record.end or ended
        record.expires = now + self._retention_s
        return PushState(
            push_token=record.token,
            handle=record.handle,
            notified=record.notified,
            end_notified=record.end,
            cursor=cursor,
            ended=ended,
            readers=readers,
        )

    async def push_advance(self, chat: str, upto: int, *, ended: bool) -> None:
        now = time.monotonic()
        record = self._hooks.push.get(check_chat(chat))
        if record is None or record.expires <= now:
            return
        record.notified = max(record.notified, upto)
        record.end = record.end or ended
        record.expires = now + self._retention_s


# Interface guard: mypy checks that MemoryBus satisfies every protocol in `Bus`.
_: type[Bus] = MemoryBus


# -- push records ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Push:
    token: str
    handle: str
    notified: int
    end: bool
    expires: float


@dataclass(slots=True)
class _HooksState:
    """The push records of this process."""

    push: dict[str, _Push] = field(default_factory=dict)
    next_sweep: float = 0.0
