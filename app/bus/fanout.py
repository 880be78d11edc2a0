"""The bus's fan-out roles: live delivery of a chat's events to subscribers on every instance.

* `FanOut` and its `Subscription`: the events each commit publishes (`chats.ChatCache`), in
  commit order, at most once, through bounded buffers.
* `Pokes`: a nudge to a chat's poller, wherever it runs.

Contracts only; it must not do I/O nor import a backend (`_hub` is the local delivery both
buses share, `_pubsub` the Redis one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from app.events import ChatEvent


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


class Pokes(Protocol):
    """A customer's write wakes the chat's poller at once, on whichever instance polls it."""

    async def poke(self, chat: str) -> None:
        """Deliver one `EventKind.POKE` to the chat's subscribers on every instance (its
        poller listens for it); stores nothing. At most once, like all fan-out."""
        ...
