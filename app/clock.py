"""Time and chance for the background loops: the `Clock` and `Random` they are handed.

Owns the one seam through which the pollers, the registry's sweeps and renewals, the fleet
view's cache and the webhook workers read the time, wait, and draw their jitter, so that a test
can run them on a fake clock (`tests/unit/clock.py`) and a seeded random source instead of
minutes of real time. `SYSTEM_CLOCK` and `random.random` are what `build_runtime` hands them
unless told otherwise. It must not schedule anything itself nor know who waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

# A draw in [0, 1): `random.random`, or a seeded `random.Random(n).random` in tests.
Random = Callable[[], float]


class Clock(Protocol):
    """Guarantees: `monotonic()` never goes back and is the time `sleep`, `wait` and
    `call_later` count in; `time()` is seconds since the epoch (signatures, notice ages), moving
    with `monotonic()`; none of them returns before its time has come on this clock, and each
    returns at once for a time already past (zero or negative seconds)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (the only one to measure spans with)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds`; cancellable."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Return once `event` is set (True) or after `seconds` (False, unless it was set at
        that very moment); cancellable."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the running loop after `seconds` (never before this returns)."""
        ...


class SystemClock:
    """The real one: `time.monotonic` (the event loop's own clock) and asyncio's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        return event.is_set()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(seconds, callback)


SYSTEM_CLOCK: Clock = SystemClock()
