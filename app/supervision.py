"""Supervision of long-lived background work: a crash is logged with its cause and the work
runs again after a doubling backoff, never silently lost; and the one backoff with jitter.

Owns the restart loop shared by the pollers (`registry.py`) and the webhook delivery workers
(`webhooks.py`): what counts as a crash (any `Exception`; cancellation passes through), the
log line (the exception's type and place, never its message, which may quote a customer, the
upstream or a receiver), the restart schedule (`RESTARTS`, starting over once a run outlasted
the longest delay). And the one backoff every retry uses (`restart_delay`: doubling from
`first_s` to `max_s`, the lower half of each delay random): restarts here, webhook deliveries
(`webhooks.py`), a poller's failed polls (`schedule.next_delay`). It must not know what the
supervised work does: what to do on a crash (publish `degraded`) and how to wait
(interruptibly) are the caller's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.clock import SYSTEM_CLOCK, Clock, Random
from app.errors import describe_exception


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays doubling from `first_s` up to `max_s`."""

    first_s: float
    max_s: float


# The restart schedule of crashed pollers and webhook workers.
RESTARTS = Backoff(first_s=1.0, max_s=30.0)


def restart_delay(crashes: int, backoff: Backoff, jitter: float) -> float:
    """Seconds before restart (or retry) number `crashes` (1 first); `jitter` in [0, 1) takes
    up to half of it off, so work that failed together does not come back in step."""
    ceiling = min(backoff.max_s, backoff.first_s * 2.0 ** min(max(crashes - 1, 0), 30))
    return ceiling * (0.5 + jitter / 2)


async def supervise(
    run: Callable[[], Awaitable[None]],
    *,
    what: str,
    logger: logging.Logger,
    backoff: Backoff,
    on_crash: Callable[[Exception], Awaitable[None]] | None = None,
    pause: Callable[[float], Awaitable[None]] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rand: Random = random.random,
) -> None:
    """Run `run()` until it returns. Each exception it raises is logged as "`what` crashed
    (<type> at <file>:<line> in <function>); restart N in S s", handed to `on_crash`, and
    `run()` is called again after `pause(delay)`. `pause` may return early (a stop): the
    caller's `run` then decides whether there is anything left to do. How long a run lasted is
    read from `clock` (whose `sleep` is the default `pause`), the jitter drawn from `rand`."""
    wait = clock.sleep if pause is None else pause
    crashes = 0
    while True:
        started = clock.monotonic()
        try:
            await run()
            return
        except Exception as error:
            if clock.monotonic() - started > backoff.max_s:
                crashes = 0
            crashes += 1
            delay = restart_delay(crashes, backoff, rand())
            logger.error(
                "%s crashed (%s); restart %d in %.1f s",
                what,
                describe_exception(error),
                crashes,
                delay,
            )
            if on_crash is not None:
                await on_crash(error)
            await wait(delay)
