"""The push hook: after a chat's poller commits, one notice per agent message (and for the
chat's end) that no reader of the chat was present to see, into the webhook outbox.

Owns what is notified and exactly-once enqueueing across the fleet: a chat's push record (on
the bus, from RequestChat's `pushToken`) holds the highest index handled, which only rises;
notices are put into the outbox under ids derived from chat and index (a second put of the
same id stores nothing) *before* the watermark rises, so an instance dying between the two
steps leaves work the next poller redoes without a duplicate. A new lease holder checks once
for what its predecessor committed but did not hand over. It must not deliver (that is
`webhooks.py`), poll, or hold up a poller on anything but two or three bus calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.bus.chats import ChatCache, Fence
from app.bus.hooks import PushRecords, PushState
from app.clock import SYSTEM_CLOCK, Clock
from app.errors import BffError, OutboxFullError
from app.events import ChatEvent, EventKind
from app.models import TranscriptEntry
from app.outbox.webhooks import Dispatcher, Envelope, envelope

log = logging.getLogger("chat_bff.push")

KIND = "push"
# Notices carry at most this much of a message's text; push services cap payloads at 4 KiB.
TEXT_MAX = 1000
_PAGE = 500


def is_agent_text(body: dict[str, Any]) -> bool:
    """A `Text` entry written by anyone but the customer (an agent, a bot, a supervisor)."""
    sender = body.get("from")
    kind = sender.get("type") if isinstance(sender, dict) else None
    return body.get("type") == "Text" and kind != "Customer"


def message_notice(state: PushState, body: dict[str, Any]) -> Envelope:
    text = body.get("text")
    text = text if isinstance(text, str) else ""
    sender = body.get("from")
    sender = sender if isinstance(sender, dict) else {}
    message = {
        "index": body.get("index"),
        "type": body.get("type"),
        "text": text[:TEXT_MAX],
        "textTruncated": len(text) > TEXT_MAX,
        "from": {
            "nickname": _str_or_none(sender.get("nickname")),
            "type": _str_or_none(sender.get("type")),
        },
    }
    return envelope(KIND, "chat.message", {**_chat_data(state), "message": message})


def end_notice(state: PushState) -> Envelope:
    return envelope(KIND, "chat.ended", _chat_data(state))


def _chat_data(state: PushState) -> dict[str, Any]:
    # The handle the app got from RequestChat, never an upstream or contact-center id.
    return {"chat": state.handle, "pushToken": state.push_token}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _candidate(event: ChatEvent) -> bool:
    if event.kind is EventKind.END:
        return True
    return event.kind is EventKind.MESSAGE and is_agent_text(event.data)


@dataclass(slots=True)
class _Chat:
    """What this process knows of a chat it polls, per lease grant (`token`)."""

    token: str
    check: bool = True  # look at the push record at the next commit, events or not
    absent: bool = False  # no push record: the chat asked for no notices


class PushBus(PushRecords, ChatCache, Protocol):
    """What the push hook uses of the bus: the chat's push record and its cached messages."""


class PushHook:
    """Called by the poller after each successful fenced commit of a chat."""

    def __init__(
        self,
        *,
        bus: PushBus,
        dispatcher: Dispatcher,
        held: Callable[[], Collection[str]] = frozenset,
        forget_every_s: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`held`: the chats this process polls now; what is known of others is dropped
        every `forget_every_s` (on `clock`, the pollers' own)."""
        self._clock = clock
        self._bus = bus
        self._dispatcher = dispatcher
        self._held = held
        self._forget_every_s = forget_every_s
        self._next_forget = clock.monotonic() + forget_every_s
        self._chats: dict[str, _Chat] = {}

    async def after_commit(self, fence: Fence, events: Sequence[ChatEvent]) -> None:
        """Never raises a bus error: a failed attempt is redone at the chat's next commit."""
        now = self._clock.monotonic()
        if now >= self._next_forget:
            self._next_forget = now + self._forget_every_s
            self.forget(self._held())
        chat = self._chats.get(fence.chat)
        if chat is None or chat.token != fence.token:
            chat = self._chats[fence.chat] = _Chat(fence.token)
        if not chat.check and (chat.absent or not any(_candidate(e) for e in events)):
            return
        try:
            chat.absent = not await self._handle(fence.chat, events)
            chat.check = False
        except BffError as error:
            chat.check = True
            log.warning("push hook for %s failed: %s", fence.chat, type(error).__name__)

    def forget(self, held: Collection[str]) -> None:
        """Drop what is known of chats this process no longer polls."""
        for key in [k for k in self._chats if k not in held]:
            del self._chats[key]

    async def _handle(self, chat: str, events: Sequence[ChatEvent]) -> bool:
        """Enqueue what is due; False when the chat has no push record."""
        state = await self._bus.push_settle(chat)
        if state is None:
            return False
        if state.readers:
            return True  # push_settle marked everything committed as seen
        upto = max(state.cursor, state.notified)
        notices: list[tuple[str, Envelope]] = []
        if upto > state.notified:
            for message in await self._unhandled(chat, state.notified, upto, events):
                if is_agent_text(message.body):
                    notices.append(
                        (f"{KIND}:{chat}:{message.index}", message_notice(state, message.body))
                    )
        if state.ended and not state.end_notified:
            notices.append((f"{KIND}:{chat}:end", end_notice(state)))
        for item_id, notice in notices:
            try:
                await self._dispatcher.enqueue(item_id, notice)
            except OutboxFullError as full:
                # Counted (bff_outbox_refused); only push notices fill this quota.
                log.error("push outbox full (%s): a notice of %s was dropped", full.limit, chat)
        await self._bus.push_advance(chat, upto, ended=state.ended)
        return True

    async def _unhandled(
        self, chat: str, after: int, upto: int, events: Sequence[ChatEvent]
    ) -> list[TranscriptEntry]:
        """Messages with after < index <= upto: from this commit's events when they cover the
        range, else from the cache (a previous holder's commits, a failed earlier attempt)."""
        committed = [e for e in events if e.kind is EventKind.MESSAGE and e.index is not None]
        if committed and (committed[0].prev or 0) <= after and (committed[-1].index or 0) >= upto:
            return [e.message for e in committed if e.index is not None and after < e.index <= upto]
        found: list[TranscriptEntry] = []
        while after < upto:
            page = await self._bus.messages(chat, after=after, limit=_PAGE)
            if not page:
                break
            found += [m for m in page if m.index <= upto]
            after = page[-1].index
        return found
