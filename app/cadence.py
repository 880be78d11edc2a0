"""When to poll next: pure functions of what happened lately.

Polls are spent where a viewer waits for something. While an agent is typing, a reply is
seconds away: fast polls (capped, in case a TypingStopped never comes). While the customer
waits for an agent (to join, or to answer their last message), or the chat is lively: the base
interval, short enough to see most agents' typing notices before their reply. A chat whose turn
is the customer's goes quiet and stretches to the idle cadence. With no reader present anywhere
(an app in the background), only the keep-alive cadence, which the upstream needs so as not to
drop the customer (45 s idle disconnect). A customer's own send is answered by one immediate
poll (the echo, asked for by a poke), and their typing notices change nothing: they have
nothing to see. After failures: exponential backoff with jitter, at least the Retry-After.

Nothing here keeps state or reads a clock: `Turn` is the transcript's part of the decision,
updated by `next_turn` from each poll's new messages; the poller owns the timing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.models import Message


@dataclass(frozen=True, slots=True)
class Cadence:
    interval_s: float = 5.0
    fast_s: float = 1.5
    idle_s: float = 8.0
    keepalive_s: float = 10.0
    backoff_max_s: float = 30.0
    # A chat counts as lively this long after its last new message; quiet, its cadence
    # stretches from the interval to the idle cadence over another such window.
    lively_window_s: float = 20.0
    # Caps on "a reply is coming": an agent typing for longer than this, or a customer
    # waiting longer, is not worth more polls than a quiet chat.
    agent_typing_max_s: float = 30.0
    awaiting_max_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Turn:
    """Whose move the transcript shows: `agent_typing` from a non-customer TypingStarted
    until that party's Text, TypingStopped or departure; `awaiting_agent` from a customer's
    Text until a non-customer Text."""

    agent_typing: bool = False
    awaiting_agent: bool = False


def _is_customer(message: Message) -> bool:
    sender = message.body.get("from")
    return isinstance(sender, dict) and sender.get("type") == "Customer"


def next_turn(turn: Turn, messages: Iterable[Message]) -> Turn:
    """The turn after `messages` (new transcript entries, in index order)."""
    for message in messages:
        kind = message.body.get("type")
        if _is_customer(message):
            if kind == "Text":
                turn = replace(turn, awaiting_agent=True)
        elif kind == "TypingStarted":
            turn = replace(turn, agent_typing=True)
        elif kind in ("TypingStopped", "ParticipantLeft"):
            turn = replace(turn, agent_typing=False)
        elif kind == "Text":
            turn = Turn()
    return turn


def poll_delay(
    cadence: Cadence,
    *,
    since_activity_s: float,
    failures: int,
    retry_after_s: float | None,
    jitter: float,
    readers: bool = True,
    agent_typing_for_s: float | None = None,
    awaiting_for_s: float | None = None,
) -> float:
    """Seconds until the next poll. `jitter` is uniform in [0, 1). `agent_typing_for_s` and
    `awaiting_for_s` are how long the agent has been typing / the customer waiting for the
    agent, None when not."""
    if failures > 0:
        ceiling = min(cadence.backoff_max_s, cadence.interval_s * 2.0 ** min(failures, 16))
        # "Equal jitter": at least half the ceiling, so retries from many chats spread out
        # without ever hammering a failing upstream faster than the backoff intends.
        delay = ceiling / 2 + ceiling / 2 * jitter
        return max(delay, float(retry_after_s or 0))
    if not readers:
        return cadence.keepalive_s
    if agent_typing_for_s is not None and agent_typing_for_s < cadence.agent_typing_max_s:
        return cadence.fast_s
    if since_activity_s < cadence.lively_window_s or (
        awaiting_for_s is not None and awaiting_for_s < cadence.awaiting_max_s
    ):
        return cadence.interval_s
    # Quiet: stretch linearly from the interval to the idle cadence over another window.
    stretch = min(1.0, (since_activity_s - cadence.lively_window_s) / cadence.lively_window_s)
    delay = cadence.interval_s + (cadence.idle_s - cadence.interval_s) * stretch
    return min(delay, cadence.keepalive_s)
