"""Domain values shared by the poller, the bus and the routes.

Owns the normalised shapes of a transcript entry, a chat's state and the events fanned out to
viewers. Holds no I/O and no upstream wire parsing (that is `transcript.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

JSON = dict[str, Any]


def encode(value: Any) -> str:
    """The one JSON text of a value that caches store and answers carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Message:
    """One transcript entry; `body` is the upstream entry as clients see it (with `index`).

    Caches keep it as its JSON text (`raw`) and answers carry that text as it is: a cached
    dict per message is work for every young-generation collection (thousands of chats'
    transcripts), a string is not, and nothing is encoded twice. `body` is decoded on first
    use (the poller's decisions, the push hook), `raw` encoded on first use (a new message)."""

    __slots__ = ("_body", "_raw", "index")

    def __init__(self, index: int, body: JSON | None = None, *, raw: str | None = None) -> None:
        if body is None and raw is None:
            raise ValueError("a message needs its body or its JSON text")
        self.index = index
        self._body = body
        self._raw = raw

    @property
    def body(self) -> JSON:
        if self._body is None:
            self._body = cast(JSON, json.loads(cast(str, self._raw)))
        return self._body

    @property
    def raw(self) -> str:
        if self._raw is None:
            self._raw = encode(self._body)
        return self._raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        if self.index != other.index:
            return False
        if self._raw is not None and self._raw == other._raw:
            return True
        return self.body == other.body

    def __hash__(self) -> int:
        return hash(self.index)

    def __repr__(self) -> str:
        return f"Message(index={self.index!r}, body={self.body!r})"


@dataclass(frozen=True, slots=True)
class ChatState:
    """What `GET /chats/{id}` shows apart from the id: state, capabilities, participants."""

    state: str
    capabilities: tuple[str, ...] = ()
    participants: tuple[JSON, ...] = ()

    def to_json(self) -> JSON:
        return {
            "state": self.state,
            "capabilities": list(self.capabilities),
            "participants": [dict(p) for p in self.participants],
        }

    @classmethod
    def from_json(cls, data: JSON) -> ChatState:
        return cls(
            state=str(data.get("state", "")),
            capabilities=tuple(str(c) for c in data.get("capabilities", ())),
            participants=tuple(dict(p) for p in data.get("participants", ())),
        )


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


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One change of a chat, in the order the poller committed it.

    `index` is the upstream index for `message` events and None otherwise; `prev` is the index
    of the message stored just before it (0 for the first), so a subscriber that saw a different
    last index knows it missed something and re-reads the cache. `raw` is a message event's
    `data` as JSON text (`Message.raw`), encoded once for every stream that sends it.
    """

    kind: EventKind
    data: JSON = field(default_factory=dict, hash=False)
    index: int | None = None
    prev: int | None = None
    raw: str | None = field(default=None, compare=False, repr=False)

    @property
    def message(self) -> Message:
        """A `message` event's entry."""
        return Message(cast(int, self.index), self.data, raw=self.raw)


class UpstreamStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
