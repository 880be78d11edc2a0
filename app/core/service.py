"""What a customer can do with a chat, whichever route or transport they use.

Owns the rules between the routes and the shared cache: handles in, upstream ids out; reads
served from the cache the chat's poller fills (never one upstream call per reader), and what
the bounded cache no longer holds read from the upstream with an explicit index (limited per
client); per-chat cookies on sends; the index-less read cursor; long-poll waits; a completed
chat stays over; a chat opened upstream is never left unreachable, and a write the upstream
took never answers an error because of the bus (the client would repeat it).
It must not know HTTP framing (routes, sse) or poll loops (poller, registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from app.bus.chats import ChatCache, ChatRecord
from app.bus.fanout import FanOut, Subscription
from app.bus.hooks import PushRecords
from app.core.handles import HandleCodec
from app.core.registry import READER_WINDOW_S, PollerRegistry
from app.edge.limits import RateLimiter
from app.errors import (
    BffError,
    BusUnavailableError,
    ChatNotFoundError,
    InvalidStateError,
    UpstreamUnavailableError,
)
from app.events import ChatEvent, EventKind
from app.models import JSON, ChatRef, ChatState, TranscriptEntry
from app.upstream.client import UpstreamClient
from app.upstream.transcript import ended_state

log = logging.getLogger("chat_bff.service")

# Operations whose result viewers wait to see: the poller polls once at once for them (the
# echo of a message, the end of a chat). Typing notices change nothing a viewer waits for.
ECHOED_OPERATIONS = frozenset({"SendMessage", "Complete"})


class ServiceBus(ChatCache, FanOut, PushRecords, Protocol):
    """What the customer operations use of the bus: the chat's shared copy (reads, cookies,
    the index-less cursor), its fan-out (long-poll waits) and the push record a RequestChat
    with a pushToken registers."""


class ChatService:
    def __init__(
        self,
        *,
        upstream: UpstreamClient,
        bus: ServiceBus,
        codec: HandleCodec,
        registry: PollerRegistry,
        cold_wait_s: float,
        draining: asyncio.Event,
        reader_window_s: float = READER_WINDOW_S,
        history_limiter: RateLimiter | None = None,
        on_history: Callable[[], None] | None = None,
    ) -> None:
        self._history_limiter = history_limiter
        self._on_history = on_history
        self._reader_window_s = reader_window_s
        self._draining = draining
        self._upstream = upstream
        self._bus = bus
        self._codec = codec
        self._registry = registry
        self._cold_wait_s = cold_wait_s

    def resolve(self, handle: str) -> ChatRef:
        """The chat behind a handle; ChatNotFoundError for anything we did not issue."""
        return self._codec.resolve(handle)

    async def create(
        self,
        nickname: str,
        subject: str,
        *,
        endpoint: str | None = None,
        user_data: Mapping[str, str] | None = None,
        push_token: str | None = None,
        client: str | None = None,
    ) -> ChatRef:
        """A new chat upstream. `client` (its creator's client key) keeps it alive in the
        background from the start when it has a `push_token` (an app that will be told of
        replies); other new chats are kept polled for the short grace until someone reads."""
        created = await self._upstream.request_chat(
            nickname, subject, endpoint=endpoint, user_data=user_data
        )
        ref = self._codec.issue(created.upstream_id)
        # The chat is open upstream now: it must end up reachable or closed, never orphaned.
        try:
            if created.cookies:
                await self._bus.set_cookies(ref.key, created.cookies)
            if push_token is not None:
                # Before the poller starts, so its first commit already knows to notify.
                await self._bus.push_register(ref.key, handle=ref.handle, push_token=push_token)
        except BusUnavailableError:
            # Its upstream session (or its push record) could not be kept, so later calls
            # could not reach it (or never notify): close it, and let the client ask again
            # (503, Retry-After).
            log.warning("bus unavailable after RequestChat: completing the new chat")
            with contextlib.suppress(BffError):
                await self._upstream.send(created.upstream_id, "Complete", cookies=created.cookies)
            raise
        try:
            # Start polling at once: the customer's page will read the chat in a moment.
            await self._registry.interest(
                ref,
                reader_s=self._reader_window_s,
                client=client if push_token is not None else None,
            )
        except BusUnavailableError:
            # The handle is stateless and works as is; the first read or stream notes the
            # interest again once the bus is back.
            log.warning("bus unavailable after RequestChat: the new chat's poller starts later")
        return ref

    async def operate(self, ref: ChatRef, operation: str, text: str | None = None) -> None:
        record = await self._bus.record(ref.key)
        if record.completed:
            raise InvalidStateError("The chat is over")
        answer = await self._upstream.send(
            ref.upstream_id, operation, text=text, cookies=record.cookies
        )
        # The upstream took it. A bus failure from here must not answer an error: the client
        # would send again, and the agent would read the message twice.
        try:
            if answer.cookies:
                await self._bus.set_cookies(ref.key, answer.cookies)
            if operation == "Complete":
                await self._bus.mark_completed(ref.key)
            await self._registry.interest(ref)
            if operation in ECHOED_OPERATIONS:
                await self._registry.poke(ref.key)
        except BusUnavailableError:
            log.warning("bus unavailable after %s: the poller catches up on its cadence", operation)

    async def warm(
        self, ref: ChatRef, *, waiting_s: float = 0.0, client: str | None = None
    ) -> ChatRecord:
        """The chat's shared record once its poller has committed at least once; notes a
        reader present for `waiting_s` (a long-poll's wait) plus the reader window, and asks
        for the background keep-alive on behalf of `client` (the reader's client key).

        A cold chat is filled by its one poller (wherever it runs), however many readers wait.
        """
        reader_s = waiting_s + self._reader_window_s
        await self._registry.interest(ref, reader_s=reader_s, client=client)
        record = await self._bus.record(ref.key)
        if record.state is None and not record.ended:
            async with self._bus.subscribe(ref.key) as subscription:
                record = await self._bus.record(ref.key)
                if record.state is None and not record.ended:
                    await self._await_event(
                        subscription,
                        lambda e: e.kind in (EventKind.STATE, EventKind.STATUS, EventKind.END),
                        self._cold_wait_s,
                    )
                    record = await self._bus.record(ref.key)
        if record.state is None:
            if record.ended:
                raise ChatNotFoundError()
            raise UpstreamUnavailableError(retry_after_s=2)
        return record

    async def chat(self, ref: ChatRef, client: str | None = None) -> ChatState:
        record = await self.warm(ref, client=client)
        assert record.state is not None
        return ended_state(record.state) if record.completed else record.state

    async def messages(
        self,
        ref: ChatRef,
        index: int | None,
        wait_s: float | None = None,
        client: str | None = None,
    ) -> list[TranscriptEntry]:
        """Messages with index >= `index`, waiting up to `wait_s` for one to exist. Without an
        index: those this chat's index-less readers were not given yet (our cursor).
        `client`: the reader's client key."""
        record = await self.warm(ref, waiting_s=wait_s or 0.0, client=client)
        if index is None:
            if record.indexless_cursor >= record.cursor:
                return []
            # Read first, claim after: a read that fails (the upstream, a limit) moves nothing.
            fresh, _ = await self._read(ref, record.indexless_cursor, client)
            given = await self._bus.claim_indexless(ref.key, record.cursor)
            return [m for m in fresh if given < m.index <= record.cursor]
        after = max(index, 1) - 1
        found, floor = await self._read(ref, after, client)
        if found or not wait_s or record.ended:
            return found
        # Nothing up to the floor exists upstream either: wait for what comes above it.
        after = max(after, floor)
        async with self._bus.subscribe(ref.key) as subscription:
            found, _ = await self._read(ref, after, client)
            if found:
                return found
            await self._await_event(
                subscription,
                lambda e: (
                    (e.kind is EventKind.MESSAGE and (e.index or 0) > after)
                    or e.kind in (EventKind.END, EventKind.RESYNC)
                ),
                wait_s,
            )
        found, _ = await self._read(ref, after, client)
        return found

    async def read(
        self, ref: ChatRef, after: int, *, client: str | None, limit: int = 1000
    ) -> list[TranscriptEntry]:
        """Up to `limit` messages with index > `after`, in index order, none missing: from the
        cache, and those it no longer holds (below its floor) from the upstream."""
        found, _ = await self._read(ref, after, client, limit)
        return found

    async def _read(
        self, ref: ChatRef, after: int, client: str | None, limit: int = 1000
    ) -> tuple[list[TranscriptEntry], int]:
        cached = await self._bus.transcript(ref.key, after, limit)
        if after >= cached.floor:
            return cached.messages, cached.floor
        older = await self._history(ref, after, cached.floor, client)
        return (older + cached.messages)[:limit], cached.floor

    async def _history(
        self, ref: ChatRef, after: int, floor: int, client: str | None
    ) -> list[TranscriptEntry]:
        """The messages in (after, floor], which the cache dropped (its caps, the budget, an
        ended chat's retention): one upstream read with an explicit index, limited per
        client. Nothing when the upstream no longer knows the chat."""
        if self._history_limiter is not None and client is not None:
            await self._history_limiter.hit(client)
        record = await self._bus.record(ref.key)
        try:
            messages, answer = await self._upstream.get_messages(
                ref.upstream_id, after + 1, record.cookies
            )
        except ChatNotFoundError:
            return []
        if self._on_history is not None:
            self._on_history()
        if answer.cookies:
            with contextlib.suppress(BusUnavailableError):
                await self._bus.set_cookies(ref.key, answer.cookies)
        return [m for m in messages if after < m.index <= floor]

    async def _await_event(
        self, subscription: Subscription, wanted: Callable[[ChatEvent], bool], timeout_s: float
    ) -> None:
        """Until an event `wanted` accepts arrives, `timeout_s` passes, or this instance
        drains (a waiting reader must not hold up a shutdown)."""
        source = aiter(subscription)
        drained: asyncio.Future[bool] = asyncio.ensure_future(self._draining.wait())
        pending: asyncio.Future[ChatEvent] | None = None
        try:
            async with asyncio.timeout(timeout_s):
                while not drained.done():
                    pending = asyncio.ensure_future(anext(source))
                    waiting: set[asyncio.Future[Any]] = {pending, drained}
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if pending.done() and wanted(pending.result()):
                        return
        except (TimeoutError, StopAsyncIteration):
            return
        finally:
            for future in (pending, drained):
                if future is not None:
                    future.cancel()


def chat_json(handle: str, state: ChatState) -> JSON:
    return {"id": handle, **state.to_json()}
