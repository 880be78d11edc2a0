"""The survey's pure rules (app/outbox/survey.py): when a chat counts as over, what the operator is
sent about it, and what a survey may say."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.api.bodies import COMMENT_MAX, SurveyBody
from app.bus.chats import ChatRecord
from app.models import ChatState, TranscriptEntry
from app.outbox.survey import NICKNAME_CHARS_MAX, NICKNAMES_MAX, chat_over, survey_data

NOW = 1_764_323_000.0  # 2025-11-28T09:43:20Z


def entry(
    index: int, kind: str, party: str | None, *, at: Any = None, **extra: Any
) -> TranscriptEntry:
    body: dict[str, Any] = {"index": index, "type": kind, **extra}
    if party is not None:
        body["from"] = {"nickname": f"{party} {index}", "type": party}
    if at is not None:
        body["utcTime"] = at
    return TranscriptEntry(index, body)


@pytest.mark.parametrize(
    ("record", "over"),
    [
        (ChatRecord(), False),
        (ChatRecord(state=ChatState("WaitingForAgent")), False),
        (ChatRecord(state=ChatState("Chatting")), False),
        (ChatRecord(state=ChatState("Chatting"), completed=True), True),  # the customer's End
        (ChatRecord(state=ChatState("Chatting"), ended=True), True),
        (ChatRecord(state=ChatState("Idle")), True),
        (ChatRecord(ended=True), True),
    ],
)
def test_over_for_the_customer(record: ChatRecord, over: bool) -> None:
    assert chat_over(record) is over


def test_what_the_operator_is_sent() -> None:
    messages = [
        entry(1, "ParticipantJoined", "Customer", at=1_764_322_800_000),
        entry(2, "ParticipantJoined", "Agent", at=1_764_322_830_500),
        entry(3, "Text", "Agent", text="Hello", at=1_764_322_831_000),
        entry(4, "TypingStarted", "Customer"),
        entry(5, "Text", "Customer", text="Hi", at=1_764_322_840_000),
        entry(6, "Notice", "External", text="Transcript by e-mail", at=1_764_322_841_000),
        entry(7, "Text", "External", text="A bot", at=1_764_322_842_000),
        entry(8, "ParticipantLeft", "Customer", at=1_764_322_900_250),
    ]
    data = survey_data(
        "HANDLE",
        SurveyBody(rating=5, comment="Great"),
        ChatState("Idle", participants=({"nickname": "Agent 2", "type": "Agent"},)),
        messages,
        ended=True,
        now=NOW,
    )
    assert data == {
        "chat": "HANDLE",
        "rating": 5,
        "comment": "Great",
        "agents": ["Agent 2", "Agent 3"],
        "startedAt": "2025-11-28T09:40:00.000Z",
        "endedAt": "2025-11-28T09:41:40.250Z",
        "messages": {"customer": 1, "agent": 1, "other": 1},
    }


@pytest.mark.parametrize(
    ("ended", "messages", "started", "ending"),
    [
        # Completed by the customer a moment ago: the end is when the survey came.
        (
            False,
            [entry(1, "Text", "Agent", at=1_764_322_800_000)],
            "2025-11-28T09:40:00.000Z",
            "2025-11-28T09:43:20.000Z",
        ),
        (False, [], None, "2025-11-28T09:43:20.000Z"),
        # The contact center gives no times (they are optional): none are made up.
        (True, [entry(1, "Text", "Agent")], None, None),
        # Times that are no times are ignored.
        (
            True,
            [
                entry(1, "Text", "Agent", at=True),
                entry(2, "Text", "Agent", at="1764322800000"),
                entry(3, "Text", "Agent", at=10**20),
            ],
            None,
            None,
        ),
    ],
)
def test_start_and_end(
    ended: bool, messages: list[TranscriptEntry], started: str | None, ending: str | None
) -> None:
    data = survey_data("H", SurveyBody(rating=3), None, messages, ended=ended, now=NOW)
    assert (data["startedAt"], data["endedAt"]) == (started, ending)
    assert data["comment"] is None


def test_agents_are_bounded_and_unique() -> None:
    long_name = "K" * 200
    messages = [
        TranscriptEntry(
            i, {"index": i, "type": "Text", "from": {"type": "Agent", "nickname": f"A{i % 15}"}}
        )
        for i in range(1, 40)
    ]
    state = ChatState("Idle", participants=({"type": "Agent", "nickname": long_name},))
    data = survey_data("H", SurveyBody(rating=1), state, messages, ended=True, now=NOW)
    assert len(data["agents"]) == NICKNAMES_MAX == len(set(data["agents"]))
    data = survey_data("H", SurveyBody(rating=1), state, [], ended=True, now=NOW)
    assert data["agents"] == ["K" * NICKNAME_CHARS_MAX]
    # Parties without a name or of another kind are nobody's agent.
    odd = [
        TranscriptEntry(1, {"index": 1, "type": "Text", "from": "Agent"}),
        entry(2, "Text", None),
    ]
    data = survey_data("H", SurveyBody(rating=1), None, odd, ended=True, now=NOW)
    assert data["agents"] == [] and data["messages"] == {"customer": 0, "agent": 0, "other": 2}


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 1},
        {"rating": 5, "comment": None},
        {"rating": 3, "comment": ""},
        {"rating": 3, "comment": "x" * COMMENT_MAX},
        {"rating": 3, "comment": "Zeilen\nund\tTabs, ☺ ok"},
    ],
)
def test_valid_surveys(body: dict[str, Any]) -> None:
    assert SurveyBody.model_validate(body).rating == body["rating"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rating": 0},
        {"rating": 6},
        {"rating": "4"},
        {"rating": 4.0},
        {"rating": False},
        {"rating": 3, "comment": "x" * (COMMENT_MAX + 1)},
        {"rating": 3, "comment": "nul \x00"},
        {"rating": 3, "comment": ["x"]},
        {"rating": 3, "extra": 1},
    ],
)
def test_invalid_surveys(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SurveyBody.model_validate(body)
