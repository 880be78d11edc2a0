"""Pure functions over upstream snapshots: normalise them, and judge what they mean.

Owns the rules for what an upstream answer means (which entries are valid, which change the
chat's state, when a chat is over). No I/O, no asyncio, no clock: everything it needs comes in
as arguments, so it is tested with tables of cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from app.models import JSON, ChatState, TranscriptEntry

ENDED_STATES = frozenset({"Idle"})
# Entries after which the participants or the state may have changed: the poller then re-reads
# the chat resource instead of waiting for its periodic refresh.
STATE_CHANGING_TYPES = frozenset(
    {"ParticipantJoined", "ParticipantLeft", "ParticipantRejoined", "TranscriptSaveDone"}
)


# The documented shapes nest three deep (message -> from -> fields); anything much deeper is
# not a chat, and would cost a recursion at every step that serialises it again.
MAX_DEPTH = 32
# Indices a client can send back as Last-Event-ID or ?index= (nine digits, see params).
MAX_INDEX = 999_999_999


class MalformedSnapshotError(ValueError):
    """An upstream answer that does not have the documented shape."""


def clean_text(text: str) -> str:
    """`text` as something every client can be sent: lone surrogates (which JSON may carry
    as escapes but UTF-8 cannot encode) become U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def clean_json(value: Any, depth: int = 0) -> Any:
    """The one sanitiser of upstream text, applied at normalisation: a JSON value whose
    strings (keys too) can be encoded, whose numbers are finite (NaN and Infinity are not
    JSON: they became null), nested at most `MAX_DEPTH` deep."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise MalformedSnapshotError("nested too deep")
        if isinstance(value, list):
            return [clean_json(item, depth + 1) for item in value]
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    return value


def _normalise_party(party: Any) -> JSON:
    if not isinstance(party, dict):
        raise MalformedSnapshotError("participant is not an object")
    out = dict(party)
    # participantId is a string in the documentation and a number on some servers.
    if "participantId" in out and out["participantId"] is not None:
        out["participantId"] = str(out["participantId"])
    return out


def normalise_message(raw: Any) -> TranscriptEntry:
    if not isinstance(raw, dict):
        raise MalformedSnapshotError("message is not an object")
    index = raw.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_INDEX:
        raise MalformedSnapshotError("message index missing or not a positive integer")
    if not isinstance(raw.get("type"), str):
        raise MalformedSnapshotError("message type missing")
    body = clean_json(raw)
    if "from" in body and body["from"] is not None:
        body["from"] = _normalise_party(body["from"])
    return TranscriptEntry(index=index, body=body)


def normalise_messages(raw: Any) -> list[TranscriptEntry]:
    """Messages in index order, each index once (the upstream promises that; we enforce it)."""
    if not isinstance(raw, list):
        raise MalformedSnapshotError("messages is not a list")
    by_index: dict[int, TranscriptEntry] = {}
    for entry in raw:
        message = normalise_message(entry)
        by_index.setdefault(message.index, message)
    return [by_index[i] for i in sorted(by_index)]


def normalise_chat(raw: Any) -> ChatState:
    if not isinstance(raw, dict) or not isinstance(raw.get("state"), str):
        raise MalformedSnapshotError("chat has no state")
    raw = clean_json(raw)
    capabilities = raw.get("capabilities")
    participants = raw.get("participants")
    capabilities = [] if capabilities is None else capabilities
    participants = [] if participants is None else participants
    if not isinstance(capabilities, list) or not isinstance(participants, list):
        raise MalformedSnapshotError("chat capabilities or participants are not lists")
    return ChatState(
        state=raw["state"],
        capabilities=tuple(str(c) for c in capabilities),
        participants=tuple(_normalise_party(p) for p in participants),
    )


def ended_state(state: ChatState) -> ChatState:
    """How a chat the customer completed looks to them, whatever the upstream says next."""
    return ChatState(state="Idle", capabilities=(), participants=state.participants)


def after_cursor(messages: Iterable[TranscriptEntry], cursor: int) -> list[TranscriptEntry]:
    return [m for m in messages if m.index > cursor]


def needs_state_refresh(new_messages: Sequence[TranscriptEntry]) -> bool:
    return any(m.body.get("type") in STATE_CHANGING_TYPES for m in new_messages)


def is_ended(state: ChatState | None, *, completed: bool = False) -> bool:
    return completed or (state is not None and state.state in ENDED_STATES)
