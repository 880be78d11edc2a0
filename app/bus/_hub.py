"""Local fan-out shared by both buses: bounded per-subscriber queues and the chat -> subscribers
table of one process.

Owns what happens between "an event reached this process" and "a subscriber reads it": the
overflow rule (drop what is buffered, queue one RESYNC) and the end of iteration when the bus
closes. It does no I/O and never awaits on the delivery path, so a committer or the pub/sub
reader can never be blocked by a slow subscriber.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from app.events import RESYNC, ChatEvent, EventKind


def raise_if_cancelled() -> None:
    """Raise the CancelledError a library swallowed. On Python 3.11, redis-py's asyncio client
    can complete a command normally although the task was cancelled meanwhile (the request
    stays counted in `Task.cancelling()`); a loop that then waits on a future of its own would
    never end. Called after Redis calls and before such waits."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def check_chat(chat: str) -> str:
    """Chat keys become part of Redis key names inside a `{...}` hash tag, so braces (which would
    move the tag) and empty keys are refused by both buses alike."""
    if not chat or "{" in chat or "}" in chat:
        raise ValueError("invalid chat key")
    return chat


class LocalSubscription:
    """One subscriber's bounded buffer; implements `fanout.Subscription`.

    A list and at most one waiting future rather than an `asyncio.Queue`: a queue brings four
    deques and an event along, about 2.5 KiB per idle subscriber, which with tens of
    thousands of open streams is most of a stream's footprint.
    """

    __slots__ = ("_closed", "_items", "_maxsize", "_waiter", "active", "chat")

    def __init__(self, chat: str, maxsize: int, *, active: bool = True) -> None:
        self.chat = chat
        # Events only count once the subscription is known to be live upstream (Redis: after
        # the subscribe barrier), so nothing committed before `subscribe` returned gets in.
        self.active = active
        self._maxsize = max(1, maxsize)
        self._items: list[ChatEvent | None] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _put(self, item: ChatEvent | None) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, events: Iterable[ChatEvent]) -> None:
        if self._closed:
            return
        for event in events:
            if len(self._items) >= self._maxsize:
                self._replace_with(RESYNC)
            else:
                self._put(event)

    def wake(self, event: ChatEvent) -> None:
        if self._closed:
            return
        if len(self._items) < self._maxsize:
            self._put(event)
        elif event.kind is not EventKind.HEARTBEAT:
            # A busy subscriber needs no heartbeat; one that must stop drops its backlog (the
            # client resumes from its Last-Event-ID).
            self._replace_with(event)

    def resync(self) -> None:
        if not self._closed:
            self._replace_with(RESYNC)

    def close(self) -> None:
        """End iteration (bus shutting down); whatever is still buffered is dropped."""
        if not self._closed:
            self._closed = True
            self._replace_with(None)

    def _replace_with(self, item: ChatEvent | None) -> None:
        self._items.clear()
        self._put(item)

    def __aiter__(self) -> LocalSubscription:
        return self

    async def __anext__(self) -> ChatEvent:
        raise_if_cancelled()
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items[0]
        if item is None:
            # Keep the end marker so every later read also stops.
            raise StopAsyncIteration
        del self._items[0]
        return item


class LocalHub:
    """chat -> live local subscriptions of this process."""

    def __init__(self, buffer: int) -> None:
        self._buffer = buffer
        self._subs: dict[str, set[LocalSubscription]] = {}

    def add(self, chat: str, *, active: bool = True) -> tuple[LocalSubscription, bool]:
        """Register a new subscription; also says whether it is the chat's first one here."""
        sub = LocalSubscription(chat, self._buffer, active=active)
        subs = self._subs.setdefault(chat, set())
        subs.add(sub)
        return sub, len(subs) == 1

    def remove(self, sub: LocalSubscription) -> bool:
        """Unregister; True when it was the chat's last subscription here."""
        subs = self._subs.get(sub.chat)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._subs[sub.chat]
        return True

    def chats(self) -> list[str]:
        return list(self._subs)

    def subscriptions(self, chat: str) -> list[LocalSubscription]:
        return list(self._subs.get(chat, ()))

    def count(self, chat: str) -> int:
        return len(self._subs.get(chat, ()))

    def deliver(self, chat: str, events: list[ChatEvent]) -> None:
        if not events:
            return
        for sub in self._subs.get(chat, ()):
            if sub.active:
                sub.push(events)

    def active(self) -> list[LocalSubscription]:
        return [sub for subs in self._subs.values() for sub in subs if sub.active]

    def close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close()
        self._subs.clear()
