"""The pure core: normalising upstream snapshots, with tables of cases."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models import ChatState, TranscriptEntry
from app.upstream.transcript import (
    MAX_DEPTH,
    MalformedSnapshotError,
    clean_json,
    ended_state,
    is_ended,
    needs_state_refresh,
    normalise_chat,
    normalise_message,
    normalise_messages,
)

AGENT = {"nickname": "Kristi", "participantId": "2", "type": "Agent"}


def msg(index: int, kind: str = "Text", **extra: Any) -> dict[str, Any]:
    return {"index": index, "type": kind, "from": AGENT, **extra}


@pytest.mark.parametrize(
    ("raw", "indices"),
    [
        ([], []),
        ([msg(1)], [1]),
        ([msg(7), msg(4)], [4, 7]),
        ([msg(2), msg(2, text="dup")], [2]),
        ([msg(3, "SomethingNew", extra="kept")], [3]),
    ],
)
def test_normalise_messages_orders_and_dedupes(raw: list[Any], indices: list[int]) -> None:
    assert [m.index for m in normalise_messages(raw)] == indices


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {"index": 1},
        [{"type": "Text"}],
        [msg(0)],
        [msg(-1)],
        [{"index": "1", "type": "Text"}],
        [{"index": True, "type": "Text"}],
        [{"index": 1}],
        ["text"],
        [{"index": 1, "type": "Text", "from": "Kristi"}],
    ],
)
def test_malformed_messages_are_rejected(raw: Any) -> None:
    with pytest.raises(MalformedSnapshotError):
        normalise_messages(raw)


def test_numeric_participant_ids_become_strings_and_unknown_fields_pass() -> None:
    raw = [msg(1, "Notice", visibility="ALL", **{"from": {"participantId": 3, "type": "External"}})]
    (message,) = normalise_messages(raw)
    assert message.body["from"]["participantId"] == "3"
    assert message.body["visibility"] == "ALL"
    assert message.body["type"] == "Notice"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"state": "Chatting", "capabilities": ["SendMessage"], "participants": [AGENT]},
            ChatState("Chatting", ("SendMessage",), (AGENT,)),
        ),
        ({"state": "WaitingForAgent"}, ChatState("WaitingForAgent")),
        (
            {"state": "Odd", "participants": [{"participantId": 1, "type": "Customer"}]},
            ChatState("Odd", (), ({"participantId": "1", "type": "Customer"},)),
        ),
    ],
)
def test_normalise_chat(raw: Any, expected: ChatState) -> None:
    assert normalise_chat(raw) == expected


@pytest.mark.parametrize("raw", [None, {}, {"state": 3}, {"state": "Idle", "participants": {}}])
def test_malformed_chat(raw: Any) -> None:
    with pytest.raises(MalformedSnapshotError):
        normalise_chat(raw)


@pytest.mark.parametrize(
    ("types", "refresh"),
    [
        ([], False),
        (["Text", "TypingStarted"], False),
        (["Text", "ParticipantJoined"], True),
        (["ParticipantLeft"], True),
        (["ParticipantRejoined"], True),
    ],
)
def test_needs_state_refresh(types: list[str], refresh: bool) -> None:
    messages = [TranscriptEntry(i + 1, msg(i + 1, t)) for i, t in enumerate(types)]
    assert needs_state_refresh(messages) is refresh


@pytest.mark.parametrize(
    ("state", "completed", "ended"),
    [
        (None, False, False),
        (ChatState("Chatting"), False, False),
        (ChatState("Idle"), False, True),
        (ChatState("WaitingForAgent"), True, True),
    ],
)
def test_is_ended(state: ChatState | None, completed: bool, ended: bool) -> None:
    assert is_ended(state, completed=completed) is ended


def test_ended_state_drops_capabilities() -> None:
    state = ended_state(ChatState("Chatting", ("SendMessage",), (AGENT,)))
    assert state.state == "Idle"
    assert state.capabilities == ()
    assert state.participants == (AGENT,)


# -- the sanitiser: whatever the upstream sent, clients can be sent it ---------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\ud800b", "a\ufffdb"),
        ("\udfff", "\ufffd"),
        ("ok ✓ 😀", "ok ✓ 😀"),
        (float("nan"), None),
        (float("inf"), None),
        (1.5, 1.5),
        ({"\ud800": ["\udc00", 1, None, True]}, {"\ufffd": ["\ufffd", 1, None, True]}),
    ],
)
def test_clean_json(raw: Any, clean: Any) -> None:
    assert clean_json(raw) == clean


def test_clean_json_refuses_deep_nesting() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(MalformedSnapshotError):
        clean_json(deep)


@pytest.mark.parametrize("index", [0, -1, 1_000_000_000, 10**40, 1.0, "1", True])
def test_message_index_must_fit(index: Any) -> None:
    with pytest.raises(MalformedSnapshotError):
        normalise_message({"index": index, "type": "Text"})


def test_normalised_entries_carry_no_lone_surrogates() -> None:
    message = normalise_message(
        {"index": 1, "type": "Text\ud800", "text": "a\udfffb", "from": {"nickname": "\ud83d"}}
    )
    json.dumps(message.body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    state = normalise_chat(
        {"state": "Chatting\ud800", "capabilities": ["\udc00"], "participants": [{"n": "\ud800"}]}
    )
    json.dumps(state.to_json(), ensure_ascii=False, allow_nan=False).encode("utf-8")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, categories=None)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_anything_cleaned_can_be_sent(value: Any) -> None:
    try:
        cleaned = clean_json(value)
    except MalformedSnapshotError:
        return
    text = json.dumps(cleaned, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    assert not (isinstance(cleaned, float) and math.isnan(cleaned))
