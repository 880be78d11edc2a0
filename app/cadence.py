"""When to poll next: a pure function of what happened lately.

Fast right after the customer did something, steady while the chat is lively or waiting for an
agent, slower when quiet but never slower than the keep-alive (the upstream drops customers
who are silent for 45 s), and exponential backoff with jitter after failures, at least as long
as the upstream's Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cadence:
    interval_s: float = 1.0
    fast_s: float = 0.25
    idle_s: float = 5.0
    keepalive_s: float = 10.0
    backoff_max_s: float = 30.0
    # How long after a customer's send the poller stays fast (the agent's typing notice and
    # reply usually follow within seconds), and how long after the last new message a chat
    # still counts as lively.
    fast_window_s: float = 5.0
    lively_window_s: float = 20.0


def poll_delay(
    cadence: Cadence,
    *,
    since_activity_s: float,
    since_poke_s: float,
    failures: int,
    retry_after_s: float | None,
    jitter: float,
) -> float:
    """Seconds until the next poll. `jitter` is uniform in [0, 1)."""
    if failures > 0:
        ceiling = min(cadence.backoff_max_s, cadence.interval_s * 2.0 ** min(failures, 16))
        # "Equal jitter": at least half the ceiling, so retries from many chats spread out
        # without ever hammering a failing upstream faster than the backoff intends.
        delay = ceiling / 2 + ceiling / 2 * jitter
        return max(delay, float(retry_after_s or 0))
    if since_poke_s < cadence.fast_window_s:
        return cadence.fast_s
    if since_activity_s < cadence.lively_window_s:
        return cadence.interval_s
    # Quiet: stretch linearly from the interval to the idle cadence over another window.
    stretch = min(1.0, (since_activity_s - cadence.lively_window_s) / cadence.lively_window_s)
    delay = cadence.interval_s + (cadence.idle_s - cadence.interval_s) * stretch
    return min(delay, cadence.keepalive_s)
