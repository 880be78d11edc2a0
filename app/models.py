"""Domain values shared by the poller, the bus and the routes.

Owns the normalised shapes of a transcript entry, a chat's state and the events fanned out to
viewers. Holds no I/O and no upstream wire parsing (that is `transcript.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One transcript entry; `body` is the upstream entry as clients see it (with `index`)."""

    index: int
    body: JSON = field(hash=False, compare=True)


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
    last index knows it missed something and re-reads the cache.
    """

    kind: EventKind
    data: JSON = field(default_factory=dict, hash=False)
    index: int | None = None
    prev: int | None = None


class UpstreamStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
