"""What a chat's recent events say about what comes next: its `Turn`, updated from each
poll's new messages by `next_turn`, and the reply and join times those messages let the fleet
observe.

Owns reading the transcript's entries for the schedule (who sent what, who is in the chat,
who is typing); it must not choose delays (`app/core/schedule.py`) nor read a clock: the poller
passes the times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.bus.fleet import HistogramKind
from app.models import TranscriptEntry


@dataclass(frozen=True, slots=True)
class Turn:
    """This chat's recent events, as times on the poller's clock (None: not now).

    `sent_at`: the customer's latest message (or the chat's start), unanswered. `typing_at`:
    another party started typing. `customer_typing_at`: the customer started typing.
    `waiting_at`: the chat started waiting for an agent. `news_at`: the last message of any
    kind. `last_reply_s`: how long the chat's last reply took. `agent`: an agent is in the
    chat (replies come from them, not from a bot). `customer_at`: the customer's last message
    or typing notice."""

    sent_at: float | None = None
    typing_at: float | None = None
    customer_typing_at: float | None = None
    waiting_at: float | None = None
    news_at: float | None = None
    last_reply_s: float | None = None
    agent: bool = False
    customer_at: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    kind: HistogramKind
    seconds: float


def _sender(message: TranscriptEntry) -> str | None:
    sender = message.body.get("from")
    kind = sender.get("type") if isinstance(sender, dict) else None
    return kind if isinstance(kind, str) else None


def next_turn(
    turn: Turn,
    messages: Iterable[TranscriptEntry],
    *,
    now: float,
    previous_poll: float | None,
    waiting: bool,
) -> tuple[Turn, list[Observation]]:
    """The turn after a poll at `now` found `messages` (new, in index order), the chat's state
    saying `waiting` for an agent; and what it observed for the fleet. A message arrived
    between `previous_poll` and `now` (the middle is taken); the customer's own message is
    taken at `now` (the poll that echoes a send runs at once)."""
    arrived = now if previous_poll is None else (previous_poll + now) / 2
    seen: list[Observation] = []
    for message in messages:
        kind = message.body.get("type")
        sender = _sender(message)
        if sender == "Customer":
            # Their typing says the agent waits for them; the message, that a reply is due.
            if kind == "Text":
                turn = replace(turn, sent_at=now, customer_typing_at=None, customer_at=now)
            elif kind == "TypingStarted":
                typing_at = turn.customer_typing_at or arrived
                turn = replace(turn, customer_typing_at=typing_at, customer_at=arrived)
            elif kind == "TypingStopped":
                turn = replace(turn, customer_typing_at=None, customer_at=arrived)
            else:
                continue
            turn = replace(turn, news_at=turn.customer_at)
            continue
        turn = replace(turn, news_at=arrived)
        if kind == "TypingStarted":
            turn = replace(turn, typing_at=turn.typing_at or arrived)
        elif kind in ("TypingStopped", "ParticipantLeft"):
            turn = replace(turn, typing_at=None)
            if kind == "ParticipantLeft" and sender == "Agent":
                turn = replace(turn, agent=False)
        elif kind == "Text":
            took = None if turn.sent_at is None else max(0.0, arrived - turn.sent_at)
            if took is not None:
                # An agent's reply and a bot's (or an acknowledgement's) keep apart: the first
                # takes tens of seconds, the second one or two.
                seen.append(Observation("reply" if sender == "Agent" else "auto", took))
            turn = replace(turn, sent_at=None, typing_at=None, last_reply_s=took)
        elif kind == "ParticipantJoined" and sender == "Agent":
            if turn.waiting_at is not None:
                seen.append(Observation("join", max(0.0, arrived - turn.waiting_at)))
            # A new party: how fast the last one replied says nothing of this one.
            turn = replace(turn, waiting_at=None, agent=True, last_reply_s=None)
    if waiting and turn.waiting_at is None and not any(o.kind == "join" for o in seen):
        # A wait that begins is news too. At the chat's start (nothing seen yet) a greeting
        # from a bot or an acknowledgement is due within seconds, as after a message.
        start = turn.news_at is None
        turn = replace(turn, waiting_at=now, news_at=turn.news_at or now)
        if start:
            turn = replace(turn, sent_at=now)
    elif not waiting:
        turn = replace(turn, waiting_at=None)
    return turn, seen
