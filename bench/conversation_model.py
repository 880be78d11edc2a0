"""A realistic conversation, as a seeded script of timed steps: what a customer and an agent
do in a five-minute chat at human pace. Pure: no I/O, no clock; the same seed gives the same
script, so every arm of a benchmark replays exactly the same conversations.

The model (times in seconds):

- the agent joins 5-30 s after RequestChat, with the platform's notice and a canned greeting
  (no typing notice before it);
- a customer turn: 4-15 s of typing, then SendMessage. Keystrokes come every 0.15-0.6 s, and in
  a quarter of the turns the customer pauses 3.5-6 s to think. The typing notices are derived
  from the keystrokes exactly as `static/widget.js` sends them: SendStartTypingNotification on
  the first key, SendStopTypingNotification 3 s after the last one, none when the message is
  sent (sending ends the typing on the agent's side);
- an agent turn 8-40 s after each customer message: TypingStarted, 4-15 s of typing, the Text
  and a TypingStopped; in 30 % of turns a second, canned Text 5-20 s later, without a typing
  notice (a pasted answer, a link);
- the next customer turn 5-30 s after the agent's last message; after 5 minutes the customer
  sends Complete, wherever the conversation is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Actor = Literal["customer", "agent"]
# customer: start/stop typing notices, send, complete; agent: join (with notice and greeting),
# typing on/off, say (typed: after a typing notice; canned: without one).
Action = Literal[
    "SendStartTypingNotification",
    "SendStopTypingNotification",
    "SendMessage",
    "Complete",
    "join",
    "typing_on",
    "typing_off",
    "say_typed",
    "say_canned",
]

TYPING_STOP_AFTER_S = 3.0  # widget.js: stop notice 3 s after the last keystroke
DURATION_S = 300.0


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    actor: Actor
    action: Action
    text: str = ""


def widget_notices(keys: list[float], send_at: float) -> list[Step]:
    """The typing notices `static/widget.js` sends for keystrokes at `keys`, then a send at
    `send_at`: start on a key while not typing, stop 3 s after the last key, silent at send."""
    steps: list[Step] = []
    typing = False
    for k, at in enumerate(keys):
        if not typing:
            steps.append(Step(at, "customer", "SendStartTypingNotification"))
            typing = True
        following = keys[k + 1] if k + 1 < len(keys) else send_at
        if following - at >= TYPING_STOP_AFTER_S:
            stop = at + TYPING_STOP_AFTER_S
            if stop < send_at:
                steps.append(Step(stop, "customer", "SendStopTypingNotification"))
                typing = False
    return steps


def _keystrokes(rng: random.Random, start: float, duration: float) -> list[float]:
    end = start + duration
    pause_at = start + rng.uniform(0.3, 0.7) * duration if rng.random() < 0.25 else None
    keys, at = [], start
    while at < end:
        keys.append(at)
        if pause_at is not None and at >= pause_at:
            at += rng.uniform(3.5, 6.0)
            pause_at = None
        else:
            at += rng.uniform(0.15, 0.6)
    return keys


def conversation(seed: int, duration_s: float = DURATION_S) -> list[Step]:
    """The script of one conversation, steps in time order, ending with the customer's
    Complete at `duration_s`."""
    rng = random.Random(seed)
    steps: list[Step] = []
    joined = rng.uniform(5, 30)
    steps.append(Step(joined, "agent", "join"))
    last_agent = joined
    turn = 0
    while True:
        turn += 1
        typing_from = last_agent + rng.uniform(5, 30)
        typing_for = rng.uniform(4, 15)
        keys = _keystrokes(rng, typing_from, typing_for)
        sent = keys[-1] + rng.uniform(0.2, 1.0)
        if sent >= duration_s:
            break
        steps += widget_notices(keys, sent)
        steps.append(Step(sent, "customer", "SendMessage", f"customer {seed}:{turn}"))
        typing_on = sent + rng.uniform(8, 40)
        said = typing_on + rng.uniform(4, 15)
        if said >= duration_s:
            break
        steps.append(Step(typing_on, "agent", "typing_on"))
        steps.append(Step(said, "agent", "say_typed", f"agent {seed}:{turn}"))
        steps.append(Step(said + 0.05, "agent", "typing_off"))
        last_agent = said
        if rng.random() < 0.3:
            last_agent = said + rng.uniform(5, 20)
            if last_agent >= duration_s:
                break
            steps.append(Step(last_agent, "agent", "say_canned", f"canned {seed}:{turn}"))
    steps = [s for s in steps if s.at < duration_s]
    steps.append(Step(duration_s, "customer", "Complete"))
    return sorted(steps, key=lambda s: s.at)


def agent_typing_share(steps: list[Step]) -> float:
    """Fraction of the conversation during which an agent typing notice stands."""
    typing, since = 0.0, None
    for step in steps:
        if step.action == "typing_on":
            since = step.at
        elif step.action in ("say_typed", "typing_off") and since is not None:
            typing += step.at - since
            since = None
    return typing / steps[-1].at
