"""The event vocabulary: every kind of chat event, how each is built, how it travels on the
bus, and which kinds a client sees on its stream under which SSE name.

Owns `EventKind`, `ChatEvent`, the builders the memory bus commits with, the bus wire format
(`encode_events`, `decode_events`; the Redis COMMIT script in `bus/_scripts.py` writes the same
bytes, which `tests/bus/test_event_wire.py` checks) and `SSE_KINDS`, the names `core/sse.py`,
the routes and the OpenAPI document use. A new event type for clients is a kind and a builder
here, its branch in the COMMIT script, its documented payload in `api/answers.py` (held to
`SSE_KINDS` by a test) and its handling in the widget; `core/sse.py` sends it as its data.
It must not do I/O or know HTTP: it describes events, it does not deliver them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from app.models import JSON, ChatState, TranscriptEntry, UpstreamStatus, encode


class EventKind(StrEnum):
    MESSAGE = "message"
    STATE = "state"
    STATUS = "status"
    END = "end"
    # Not sent to clients: tells a subscriber that events may have been missed (bus reconnect,
    # overflow) and that it must re-read the cache from its own last index.
    RESYNC = "resync"
    # Not sent to clients: asks the chat's poller, wherever it runs, to poll now.
    POKE = "poke"
    # Local to one subscriber, never on the bus: wake-ups of an SSE stream (time for a
    # heartbeat, the instance drains, the client went away).
    HEARTBEAT = "heartbeat"
    DRAIN = "drain"
    CLOSE = "close"


# The kinds a client's stream carries, each as the SSE `event:` name of its value, in the
# order the documentation lists them.
SSE_KINDS: tuple[EventKind, ...] = (
    EventKind.STATE,
    EventKind.MESSAGE,
    EventKind.STATUS,
    EventKind.END,
)


def event_model_name(kind: EventKind) -> str:
    """The OpenAPI schema documenting one SSE event of `kind` (`app/api/answers.py`)."""
    return f"{kind.value.capitalize()}Event"


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One change of a chat, in the order the poller committed it.

    `index` is the upstream index for `message` events and None otherwise; `prev` is the index
    of the message stored just before it (0 for the first), so a subscriber that saw a different
    last index knows it missed something and re-reads the cache. `raw` is a message event's
    `data` as JSON text (`TranscriptEntry.raw`), encoded once for every stream that sends it.
    """

    kind: EventKind
    data: JSON = field(default_factory=dict, hash=False)
    index: int | None = None
    prev: int | None = None
    raw: str | None = field(default=None, compare=False, repr=False)

    @property
    def message(self) -> TranscriptEntry:
        """A `message` event's entry."""
        return TranscriptEntry(cast(int, self.index), self.data, raw=self.raw)


# -- builders: what a commit publishes -----------------------------------------------------


def message_event(message: TranscriptEntry, prev: int) -> ChatEvent:
    return ChatEvent(
        EventKind.MESSAGE, message.body, index=message.index, prev=prev, raw=message.raw
    )


def state_event(state: ChatState) -> ChatEvent:
    return ChatEvent(EventKind.STATE, state.to_json())


def status_data(status: UpstreamStatus) -> JSON:
    """A `status` event's `data`."""
    return {"upstream": status.value}


def status_event(status: UpstreamStatus) -> ChatEvent:
    return ChatEvent(EventKind.STATUS, status_data(status))


END = ChatEvent(EventKind.END)
POKE = ChatEvent(EventKind.POKE)
RESYNC = ChatEvent(EventKind.RESYNC)
HEARTBEAT = ChatEvent(EventKind.HEARTBEAT)
DRAIN = ChatEvent(EventKind.DRAIN)
CLOSE = ChatEvent(EventKind.CLOSE)


# -- the bus wire format -------------------------------------------------------------------
#
# One commit's events are one JSON list; each event `{"k": kind, "i": index, "p": prev,
# "d": data}`, with "i" and "p" for messages only. A message's `d` is its JSON text as stored
# (`TranscriptEntry.raw`); any other `d` is canonical JSON (sorted keys), the form in which
# the COMMIT script receives a state and compares it with the one it holds.


def canonical(value: Any) -> str:
    """The one JSON text of a value the bus compares: equal values, equal strings."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def state_wire(state: ChatState) -> str:
    """A state as the COMMIT script takes, stores and publishes it."""
    return canonical(state.to_json())


def _encode_one(event: ChatEvent) -> str:
    data = event.raw if event.raw is not None else canonical(event.data)
    if event.index is None:
        return f'{{"k":"{event.kind.value}","d":{data}}}'
    return f'{{"k":"{event.kind.value}","i":{event.index},"p":{event.prev},"d":{data}}}'


def encode_events(events: Iterable[ChatEvent]) -> str:
    """The bus payload of `events`, byte for byte what the COMMIT script publishes."""
    return "[" + ",".join(_encode_one(e) for e in events) + "]"


def decode_events(payload: str | bytes) -> list[ChatEvent]:
    """The events of one bus payload; a message's JSON text encoded again here, once per
    instance, rather than by each of its streams."""
    events = []
    for e in json.loads(payload):
        kind, data = EventKind(e["k"]), e.get("d") or {}
        raw = encode(data) if kind is EventKind.MESSAGE else None
        events.append(ChatEvent(kind, data, index=e.get("i"), prev=e.get("p"), raw=raw))
    return events
