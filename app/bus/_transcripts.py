"""The memory bus's cached transcripts, within their bounds (`chats.TranscriptLimits`).

Owns one chat's log of messages (`ChatLog`: index order, JSON texts, their sizes, the floor
below which messages were dropped), the process's budget over all logs (`LogBudget`: the
total bytes, and which logs to drop first when over it), and every chat's log with those
bounds applied (`MemoryTranscripts`). No I/O and no clock of its own (times are passed in);
the memory bus calls it inside its atomic (await-free) methods.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.bus.chats import CachedMessages, TranscriptLimits, TranscriptMeter
from app.models import TranscriptEntry


def text_bytes(raw: str) -> int:
    """What a message costs the cache: the bytes of its JSON text (as Redis counts them)."""
    return len(raw.encode("utf-8", "surrogatepass"))


@dataclass(slots=True)
class ChatLog:
    """Messages with index > `floor`, in index order; `nbytes` their text's bytes; `cursor`
    the highest index ever appended."""

    floor: int = 0
    cursor: int = 0
    nbytes: int = 0
    indices: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)  # JSON text: no dicts for the GC to scan
    sizes: list[int] = field(default_factory=list)

    def append(self, index: int, raw: str) -> None:
        self.cursor = index
        self.indices.append(index)
        self.raws.append(raw)
        size = text_bytes(raw)
        self.sizes.append(size)
        self.nbytes += size

    def trim(self, max_messages: int, max_bytes: int) -> int:
        """Drop the oldest messages until within both caps; how many were dropped."""
        count, nbytes = 0, self.nbytes
        while count < len(self.indices) and (
            len(self.indices) - count > max_messages or nbytes > max_bytes
        ):
            nbytes -= self.sizes[count]
            count += 1
        return self._drop_first(count)

    def drop(self) -> int:
        """Drop every message: nothing up to the cursor is cached any more. How many."""
        dropped = self._drop_first(len(self.indices))
        self.floor = max(self.floor, self.cursor)
        return dropped

    def _drop_first(self, count: int) -> int:
        if count:
            self.floor = max(self.floor, self.indices[count - 1])
            self.nbytes -= sum(self.sizes[:count])
            del self.indices[:count], self.raws[:count], self.sizes[:count]
        return count

    def after(self, after: int, limit: int) -> list[TranscriptEntry]:
        start = bisect.bisect_right(self.indices, after)
        end = start + limit
        return [
            TranscriptEntry(index, raw=raw)
            for index, raw in zip(self.indices[start:end], self.raws[start:end], strict=True)
        ]


@dataclass(slots=True)
class LogBudget:
    """The bytes of all logs of a process, at most `limit`: the logs least recently committed
    to are the first to go (`over`)."""

    limit: int
    total: int = 0
    _held: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def held(self, chat: str, nbytes: int, *, used: bool) -> None:
        """`chat`'s log holds `nbytes` now; `used`: it was committed to (it becomes the last
        to be dropped)."""
        self.total += nbytes - self._held.get(chat, 0)
        if nbytes <= 0:
            self._held.pop(chat, None)
            return
        self._held[chat] = nbytes  # in its place when it has one
        if used:
            self._held.move_to_end(chat)

    def over(self) -> list[str]:
        """The chats whose logs must be dropped, least recently committed first, to come
        within the limit (the caller drops them and reports each with `held`)."""
        victims, total = [], self.total
        for chat, nbytes in self._held.items():
            if total <= self.limit:
                break
            victims.append(chat)
            total -= nbytes
        return victims


class MemoryTranscripts:
    """Every chat's log in one process, within `TranscriptLimits`: per chat (at each append),
    over all chats (`LogBudget`), and an ended chat's retention (at reads and sweeps)."""

    def __init__(self, caps: TranscriptLimits, meter: TranscriptMeter | None) -> None:
        self._caps = caps
        self._meter = meter
        self._logs: dict[str, ChatLog] = {}
        self._ends: dict[str, float] = {}  # ended chat -> when its messages go
        self._budget = LogBudget(caps.budget_bytes)

    def append(self, chat: str, messages: Iterable[TranscriptEntry]) -> None:
        """New messages of `chat` (above its cursor, in index order), then its caps."""
        log = self._logs.get(chat)
        if log is None:
            log = self._logs[chat] = ChatLog()
        for message in messages:
            log.append(message.index, message.raw)
        dropped = log.trim(self._caps.max_messages, self._caps.max_bytes)
        if dropped and self._meter is not None:
            self._meter.transcript_evicted("chat_cap", dropped)
        self._held(chat, log.nbytes, used=True)

    def ended(self, chat: str, now: float) -> None:
        self._ends[chat] = now + self._caps.ended_retention_s

    def read(self, chat: str, after: int, limit: int, now: float) -> CachedMessages:
        if self._ends.get(chat, now + 1) <= now:
            self._expire(chat)
        log = self._logs.get(chat)
        if log is None:
            return CachedMessages(0, [])
        return CachedMessages(log.floor, log.after(after, max(0, limit)))

    def forget(self, chat: str) -> None:
        """The chat's whole entry expired."""
        self._ends.pop(chat, None)
        if self._logs.pop(chat, None) is not None:
            self._held(chat, 0, used=False)

    def sweep(self, now: float) -> None:
        for chat in [c for c, at in self._ends.items() if at <= now]:
            self._expire(chat)

    def expire_if_due(self, chat: str, now: float) -> None:
        """The ended chat's retention may be over (the bus's timer for it)."""
        if self._ends.get(chat, now + 1) <= now:
            self._expire(chat)

    @property
    def ended_retention_s(self) -> float:
        return self._caps.ended_retention_s

    def _expire(self, chat: str) -> None:
        """An ended chat's retention is over: its messages go (its record stays)."""
        del self._ends[chat]
        log = self._logs.get(chat)
        if log is not None and log.drop():
            self._held(chat, 0, used=False)

    def _held(self, chat: str, nbytes: int, *, used: bool) -> None:
        """Account for `chat`'s log; over the budget, drop whole logs of the chats least
        recently committed to."""
        self._budget.held(chat, nbytes, used=used)
        for victim in self._budget.over():
            count = self._logs[victim].drop()
            self._budget.held(victim, 0, used=False)
            if self._meter is not None:
                self._meter.transcript_evicted("budget", count)
        if self._meter is not None:
            self._meter.transcript_held(self._budget.total)
