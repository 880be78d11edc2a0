"""How fast the scripted agent acts: named paces of time ranges, and the timed steps of one
reply drawn from a pace.

Owns the timing model only. Pure: no clock, no sleeps, no asyncio; every draw comes from the
`random.Random` passed in, so a seed replays the same timings. It must not know the wording of
replies nor touch a chat (agent.py does both).

The paces (`chat-bff emulator --pace`):

- `fixed`: the agent joins 2 s after RequestChat, starts typing 1 s after each customer
  message and types for 0.5 s; no canned answers, no bot. What the test suite runs at (the
  emulator's `agent_*` delays can make it faster).
- `demo`: human but snappy, for `chat-bff demo`. A bot line 0.5-3 s after the customer's
  first message (the RequestChat subject) with no typing notice, the agent joining 3-6 s after
  RequestChat, then for each customer message 1-2 s of thinking and a typing notice standing
  4-5 s plus 0.03 s per character before the reply; three replies in ten get a canned
  follow-up 1.5-4 s later with no typing notice.
- `model`: the ranges of the benchmark's conversation model (bench/conversation_model.py):
  a queue wait of 10-300 s before the agent joins, 8-40 s before typing, 4-15 s of typing, a
  canned line 5-30 s later in 40 % of turns; no bot line. Two differences, since a scripted
  agent here answers every message with a typed reply: the canned line comes after the typed
  reply (in the bench it replaces it), and the bench's bot-first chats are left out. Keep the
  ranges in step with that model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Range = tuple[float, float]
"""Seconds, inclusive: a draw is uniform between the two."""

Action = Literal["typing_on", "say", "typing_off", "say_canned"]
"""`say` posts the reply it was drawn for; `say_canned` a canned line (no typing before it)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One act of the agent, `at` seconds after it took up the customer's message."""

    at: float
    action: Action


@dataclass(frozen=True, slots=True)
class Pace:
    name: str
    join_s: Range
    """RequestChat -> the agent joins (with the platform's notice and its greeting, untyped)."""
    think_s: Range
    """A customer message -> the agent starts typing (TypingStarted)."""
    typing_s: Range
    """How long the typing notice stands before the reply, plus `typing_per_char_s`."""
    typing_per_char_s: float = 0.0
    """Longer replies take longer to type: seconds per character of the reply."""
    canned_share: float = 0.0
    """Share of replies followed by a canned line, which comes with no typing notice."""
    canned_s: Range = (0.0, 0.0)
    """The typed reply -> its canned follow-up."""
    bot_s: Range | None = None
    """The customer's first message (RequestChat's subject) -> a bot line, with no typing
    notice, while the chat waits for the agent; None: no bot."""

    def __post_init__(self) -> None:
        ranges = {"join_s": self.join_s, "think_s": self.think_s, "typing_s": self.typing_s}
        ranges["canned_s"] = self.canned_s
        if self.bot_s is not None:
            ranges["bot_s"] = self.bot_s
        for name, (low, high) in ranges.items():
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range 0 <= low <= high, not {low}-{high}")
        if self.typing_per_char_s < 0:
            raise ValueError("typing_per_char_s must be >= 0")
        if not 0 <= self.canned_share <= 1:
            raise ValueError("canned_share must be between 0 and 1")


def fixed(join_s: float, think_s: float, typing_s: float) -> Pace:
    """The same delays every time: no canned line, no bot."""
    return Pace("fixed", (join_s, join_s), (think_s, think_s), (typing_s, typing_s))


FIXED = fixed(2.0, 1.0, 0.5)

# At the shipped 5 s poll cadence a customer's send is followed by an echo poll, then one ~5 s
# later: a typing notice must stand across that poll for the widget to show it, so the
# shortest reply lands after ~6 s (1 s of thinking + 4 s + 34 characters at 0.03 s), leaving a
# second for a busy machine. A schedule that polls sooner after a send shows it for longer.
DEMO = Pace(
    "demo",
    join_s=(3.0, 6.0),
    think_s=(1.0, 2.0),
    typing_s=(4.0, 5.0),
    typing_per_char_s=0.03,
    canned_share=0.3,
    canned_s=(1.5, 4.0),
    bot_s=(0.5, 3.0),
)

MODEL = Pace(
    "model",
    join_s=(10.0, 300.0),
    think_s=(8.0, 40.0),
    typing_s=(4.0, 15.0),
    canned_share=0.4,
    canned_s=(5.0, 30.0),
)

PACES = {pace.name: pace for pace in (FIXED, DEMO, MODEL)}


def draw(rng: random.Random, span: Range) -> float:
    low, high = span
    return low if low == high else rng.uniform(low, high)


def typing_range(pace: Pace, text: str) -> Range:
    """How long the typing notice stands before `text`, at the least and at the most."""
    extra = pace.typing_per_char_s * len(text)
    return pace.typing_s[0] + extra, pace.typing_s[1] + extra


def reply(pace: Pace, rng: random.Random, text: str, *, canned: bool = True) -> list[Step]:
    """The steps of the agent's reply `text` to a customer message, in time order: typing
    starts, the text, typing stops; then, for a `canned_share` of replies (only if `canned`),
    a canned line with no typing notice."""
    started = draw(rng, pace.think_s)
    said = started + draw(rng, typing_range(pace, text))
    steps = [Step(started, "typing_on"), Step(said, "say"), Step(said, "typing_off")]
    if canned and pace.canned_share > 0 and rng.random() < pace.canned_share:
        steps.append(Step(said + draw(rng, pace.canned_s), "say_canned"))
    return steps


def opening(pace: Pace, rng: random.Random) -> tuple[float | None, float]:
    """When the bot line (None: no bot) and the agent's join come, in seconds after
    RequestChat. A bot only speaks before the agent joins."""
    join = draw(rng, pace.join_s)
    if pace.bot_s is None:
        return None, join
    bot = draw(rng, pace.bot_s)
    return (bot if bot < join else None), join


def _span(span: Range) -> str:
    low, high = span
    return f"{low:g} s" if low == high else f"{low:g}-{high:g} s"


def describe(pace: Pace) -> str:
    """The pace in one line of words (the emulator's --help)."""
    parts = [] if pace.bot_s is None else [f"a bot line {_span(pace.bot_s)} after RequestChat"]
    parts.append(f"joins after {_span(pace.join_s)}")
    typing = _span(pace.typing_s)
    if pace.typing_per_char_s:
        typing += f" + {pace.typing_per_char_s:g} s a character"
    parts.append(f"starts typing {_span(pace.think_s)} after each message, for {typing}")
    if pace.canned_share:
        share = f"{pace.canned_share * 100:g} %"
        parts.append(f"{share} of replies get a canned follow-up {_span(pace.canned_s)} later")
    return "; ".join(parts)
