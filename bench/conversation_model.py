"""A realistic conversation, as a seeded script of timed steps: what a customer, a bot and an
agent do in a chat at human pace. Pure: no I/O, no clock; the same seed gives the same script,
so every arm of a benchmark replays exactly the same conversations, and the oracle
(`bench/oracle.py`) reads the same distributions from `Model` that the scripts are drawn from.

Every reply the customer's tab must show belongs to a class (`Step.kind`), reported apart:

- `join`: the agent joins after a queue wait (uniform in `queue_wait_s`, from RequestChat or
  from the bot's hand-over), with the platform's notice and a greeting, no typing notice;
- `typing` and `typed`: an agent reply typed after a TypingStarted (8-40 s after the
  customer's message, then 4-15 s of typing), as agent desktops send it;
- `canned`: a standard answer sent with one click, no typing notice (a share `canned_share` of
  the agent's replies, 5-30 s after the customer's message);
- `bot`: in a bot-first chat, a bot greets and answers each customer message 0.5-3 s later, no
  typing notice, then hands over to the queue;
- `end`: the agent ends the chat 5-30 s after its last reply once `talk_s` have passed since it
  joined (there is no Complete from the customer).

A customer turn: it starts 5-30 s after the last reply, 4-15 s of typing, then SendMessage.
Keystrokes come every 0.15-0.6 s, and in a quarter of the turns the customer pauses 3.5-6 s to
think. The typing notices are derived from the keystrokes exactly as `static/widget.js` sends
them: SendStartTypingNotification on the first key, SendStopTypingNotification 3 s after the
last one, none when the message is sent (sending ends the typing on the agent's side).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Actor = Literal["customer", "agent", "bot"]
# customer: start/stop typing notices, send; agent: join (with notice and greeting), typing
# on/off, say, leave; bot: say.
Action = Literal[
    "SendStartTypingNotification",
    "SendStopTypingNotification",
    "SendMessage",
    "join",
    "typing_on",
    "typing_off",
    "say",
    "leave",
    "bot_say",
]
Kind = Literal["", "join", "typing", "typed", "canned", "bot", "end"]
# The classes a viewer waits for, in report order.
CLASSES: tuple[Kind, ...] = ("typed", "typing", "canned", "bot", "join", "end")
# The text of each class's messages starts with its prefix, so a transcript tells them apart.
TEXT_PREFIX = {"typed": "agent ", "canned": "canned ", "bot": "bot "}

# The bot's last answer says it hands the chat over to the queue (bots do say so).
HANDOVER = ", handing over to an agent"
TYPING_STOP_AFTER_S = 3.0  # widget.js: stop notice 3 s after the last keystroke

Range = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Model:
    """The distributions the scripts are drawn from (uniform in each range, seconds)."""

    canned_share: float = 0.4
    queue_wait_s: Range = (10.0, 300.0)
    bot_reply_s: Range = (0.5, 3.0)
    bot_turns: tuple[int, int] = (2, 4)  # customer messages the bot answers before hand-over
    typing_after_s: Range = (8.0, 40.0)
    typing_for_s: Range = (4.0, 15.0)
    canned_after_s: Range = (5.0, 30.0)
    customer_after_s: Range = (5.0, 30.0)
    customer_typing_s: Range = (4.0, 15.0)
    talk_s: float = 120.0
    end_after_s: Range = (5.0, 30.0)


MODEL = Model()


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    actor: Actor
    action: Action
    text: str = ""
    kind: Kind = ""  # what a viewer sees of it, for the steps a viewer waits for


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


def _customer_turn(
    rng: random.Random, model: Model, after: float, text: str
) -> tuple[list[Step], float]:
    """A customer turn starting after the reply at `after`: its steps and the send time."""
    keys = _keystrokes(
        rng, after + rng.uniform(*model.customer_after_s), rng.uniform(*model.customer_typing_s)
    )
    sent = keys[-1] + rng.uniform(0.2, 1.0)
    return [*widget_notices(keys, sent), Step(sent, "customer", "SendMessage", text)], sent


def conversation(seed: int, model: Model = MODEL, *, bot_first: bool = False) -> list[Step]:
    """The script of one conversation from RequestChat (at 0), steps in time order, ending with
    the agent leaving."""
    rng = random.Random(seed)
    steps: list[Step] = []
    turn = 0
    queue_from = 0.0
    if bot_first:
        said = rng.uniform(*model.bot_reply_s)
        steps.append(Step(said, "bot", "bot_say", f"bot {seed}:0", "bot"))
        turns = rng.randint(*model.bot_turns)
        for _ in range(turns):
            turn += 1
            taken, sent = _customer_turn(rng, model, said, f"customer {seed}:{turn}")
            said = sent + rng.uniform(*model.bot_reply_s)
            text = f"bot {seed}:{turn}" + (HANDOVER if turn == turns else "")
            steps += [*taken, Step(said, "bot", "bot_say", text, "bot")]
        queue_from = said
    joined = queue_from + rng.uniform(*model.queue_wait_s)
    steps.append(Step(joined, "agent", "join", kind="join"))
    last = joined
    while last - joined < model.talk_s:
        turn += 1
        taken, sent = _customer_turn(rng, model, last, f"customer {seed}:{turn}")
        steps += taken
        if rng.random() < model.canned_share:
            last = sent + rng.uniform(*model.canned_after_s)
            steps.append(Step(last, "agent", "say", f"canned {seed}:{turn}", "canned"))
            continue
        typing_on = sent + rng.uniform(*model.typing_after_s)
        last = typing_on + rng.uniform(*model.typing_for_s)
        steps += [
            Step(typing_on, "agent", "typing_on", kind="typing"),
            Step(last, "agent", "say", f"agent {seed}:{turn}", "typed"),
            Step(last + 0.05, "agent", "typing_off"),
        ]
    steps.append(Step(last + rng.uniform(*model.end_after_s), "agent", "leave", kind="end"))
    return sorted(steps, key=lambda s: s.at)


def is_bot_first(k: int) -> bool:
    """Which of a run's conversations start with a bot: every third, the first among them."""
    return k % 3 == 0


def run_scripts(seed: int, count: int, model: Model = MODEL) -> list[list[Step]]:
    """The `count` conversations of a run: conversation k has seed `seed + k`."""
    return [conversation(seed + k, model, bot_first=is_bot_first(k)) for k in range(count)]


def class_counts(scripts: list[list[Step]]) -> dict[str, int]:
    """How many events of each class the scripts hold."""
    counts = Counter(step.kind for script in scripts for step in script if step.kind)
    return {kind: counts.get(kind, 0) for kind in CLASSES}


def agent_typing_share(steps: list[Step]) -> float:
    """Fraction of the conversation during which an agent typing notice stands."""
    typing, since = 0.0, None
    for step in steps:
        if step.action == "typing_on":
            since = step.at
        elif step.action in ("say", "typing_off") and since is not None:
            typing += step.at - since
            since = None
    return typing / steps[-1].at
