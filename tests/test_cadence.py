"""Poll cadence as tables: whose turn the transcript shows, and the delay each situation gets
(fast while an agent types, the interval while lively or while the customer waits, stretched
when quiet, the keep-alive with no reader, backoff with jitter and Retry-After on failures)."""

from __future__ import annotations

from typing import Any

import pytest

from app.cadence import Cadence, Turn, next_turn, poll_delay
from app.models import Message

C = Cadence(
    interval_s=5.0,
    fast_s=1.5,
    idle_s=8.0,
    keepalive_s=10.0,
    backoff_max_s=30.0,
    lively_window_s=20.0,
    agent_typing_max_s=30.0,
    awaiting_max_s=120.0,
)
QUIET = 1e9


def entry(kind: str, party: str | None) -> Message:
    body: dict[str, Any] = {"index": 1, "type": kind}
    if party is not None:
        body["from"] = {"nickname": "x", "participantId": "1", "type": party}
    return Message(1, body)


TYPING = Turn(agent_typing=True)
AWAITING = Turn(awaiting_agent=True)
BOTH = Turn(agent_typing=True, awaiting_agent=True)


@pytest.mark.parametrize(
    ("before", "entries", "after"),
    [
        (Turn(), [], Turn()),
        # The customer's own typing notices say nothing about what comes next.
        (Turn(), [("TypingStarted", "Customer"), ("TypingStopped", "Customer")], Turn()),
        (Turn(), [("Text", "Customer")], AWAITING),
        (Turn(), [("TypingStarted", "Agent")], TYPING),
        (AWAITING, [("TypingStarted", "Agent")], BOTH),
        (BOTH, [("Text", "Agent")], Turn()),
        (BOTH, [("TypingStopped", "Agent")], AWAITING),
        (TYPING, [("ParticipantLeft", "Agent")], Turn()),
        # A customer message while the agent types: the agent is still typing.
        (TYPING, [("Text", "Customer")], BOTH),
        # Notices and joins from the system change no turn.
        (AWAITING, [("Notice", "External"), ("ParticipantJoined", "Agent")], AWAITING),
        # Another party (a bot, a supervisor) typing or answering counts like an agent.
        (AWAITING, [("TypingStarted", "Supervisor"), ("Text", "Supervisor")], Turn()),
        # Several entries in one poll: the last word wins.
        (Turn(), [("Text", "Customer"), ("TypingStarted", "Agent"), ("Text", "Agent")], Turn()),
        (Turn(), [("TypingStarted", "Agent"), ("Text", "Agent"), ("Text", "Customer")], AWAITING),
        # Unknown types change nothing; a Text without a sender is not the customer's.
        (AWAITING, [("Whatever", "Agent"), ("Whatever", None)], AWAITING),
        (AWAITING, [("Text", None)], Turn()),
    ],
)
def test_next_turn(before: Turn, entries: list[tuple[str, str | None]], after: Turn) -> None:
    assert next_turn(before, [entry(kind, party) for kind, party in entries]) == after


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        ({"since_activity_s": 0.0}, 5.0),  # lively
        ({"since_activity_s": 19.9}, 5.0),  # still lively
        ({"since_activity_s": 30.0}, 6.5),  # half-way to idle
        ({"since_activity_s": 40.0}, 8.0),  # idle
        ({"since_activity_s": QUIET}, 8.0),  # idle stays idle
        ({"since_activity_s": QUIET, "agent_typing_for_s": 0.0}, 1.5),  # a reply is coming
        ({"since_activity_s": 0.0, "agent_typing_for_s": 29.9}, 1.5),
        ({"since_activity_s": 0.0, "agent_typing_for_s": 30.0}, 5.0),  # typing too long: capped
        ({"since_activity_s": QUIET, "agent_typing_for_s": 31.0}, 8.0),
        ({"since_activity_s": QUIET, "awaiting_for_s": 60.0}, 5.0),  # the customer waits
        ({"since_activity_s": 30.0, "awaiting_for_s": 120.0}, 6.5),  # waited too long: quiet
        # Nobody reads (an app in the background): the keep-alive only, whatever happens.
        ({"since_activity_s": 0.0, "readers": False}, 10.0),
        ({"since_activity_s": 0.0, "readers": False, "agent_typing_for_s": 1.0}, 10.0),
        ({"since_activity_s": 0.0, "failures": 1, "jitter": 0.0}, 5.0),  # 10 s ceiling, half
        ({"since_activity_s": 0.0, "failures": 1, "jitter": 0.999}, 9.995),
        ({"since_activity_s": 0.0, "failures": 2, "jitter": 0.0}, 10.0),  # 20 s ceiling
        ({"since_activity_s": 0.0, "failures": 10, "jitter": 0.0}, 15.0),  # capped at 30 s
        ({"since_activity_s": 0.0, "failures": 10, "jitter": 0.999}, 29.985),
        ({"since_activity_s": 0.0, "failures": 1, "retry_after_s": 12}, 12.0),  # Retry-After
        ({"since_activity_s": 0.0, "failures": 50, "jitter": 0.5}, 22.5),  # no overflow
        # Failing, even a typing agent or an absent reader waits for the backoff.
        ({"since_activity_s": 0.0, "failures": 3, "agent_typing_for_s": 0.0}, 15.0),
        ({"since_activity_s": 0.0, "failures": 3, "readers": False}, 15.0),
    ],
)
def test_poll_delay(situation: dict[str, Any], expected: float) -> None:
    arguments: dict[str, Any] = {"failures": 0, "retry_after_s": None, "jitter": 0.0}
    arguments.update(situation)
    assert poll_delay(C, **arguments) == pytest.approx(expected, abs=1e-3)


def test_quiet_chats_never_wait_longer_than_the_keepalive() -> None:
    slow = Cadence(interval_s=1.0, idle_s=30.0, keepalive_s=10.0)
    assert poll_delay(
        slow, since_activity_s=QUIET, failures=0, retry_after_s=None, jitter=0
    ) == pytest.approx(10.0)


def test_backoff_spreads_with_jitter() -> None:
    delays = {
        poll_delay(C, since_activity_s=0, failures=4, retry_after_s=None, jitter=j)
        for j in (0.0, 0.25, 0.5, 0.75)
    }
    assert len(delays) == 4
    assert min(delays) >= 15.0
