"""Domain values shared by the poller, the bus and the routes.

Owns the normalised shapes of a transcript entry and a chat's state, and the one identity of a
chat (`ChatRef`) passed from the route down to its poller. Holds no I/O, no upstream wire
parsing (that is `upstream/transcript.py`) and no events (`events.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

JSON = dict[str, Any]

# The longest upstream chat id a `ChatRef` carries: what a handle seals (`HandleCodec`), and
# so what the upstream client accepts from a RequestChat answer.
MAX_UPSTREAM_ID_BYTES = 200


def encode(value: Any) -> str:
    """The one JSON text of a value that caches store and answers carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class TranscriptEntry:
    """One transcript entry (a message, a join, a typing notice, ...): `body` is the upstream
    entry as clients see it (with `index`). Not the API's schema of it (`app.api.answers.Message`)
    nor the emulator's (`app.emulator.state.EmulatorMessage`).

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
        if not isinstance(other, TranscriptEntry):
            return NotImplemented
        if self.index != other.index:
            return False
        if self._raw is not None and self._raw == other._raw:
            return True
        return self.body == other.body

    def __hash__(self) -> int:
        return hash(self.index)

    def __repr__(self) -> str:
        return f"TranscriptEntry(index={self.index!r}, body={self.body!r})"


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


class UpstreamStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class ChatRef:
    """One chat, as every layer names it: the handle clients hold, the upstream's id (never
    shown to a client) and the key the bus files it under. Made once, where the handle is
    opened (`HandleCodec.resolve`) or issued, and passed down as it is."""

    handle: str
    upstream_id: str
    key: str
