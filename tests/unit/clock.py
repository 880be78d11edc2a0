"""A fake `app.clock.Clock` for the fast lane: time moves only when the test says so.

`advance(s)` runs the loop until every task waits, then jumps to the earliest timer due within
`s`, fires it, lets the loop run again, and so on until `s` have passed: minutes of a poller's
life take milliseconds, in the order they would have happened, the same every run. Only what
waits through this clock (the pollers, the registry, the fleet view, the webhook workers when
handed it) is on fake time; the memory bus and the emulator keep the real clock, which moves
next to nothing meanwhile.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

# A test's loop goes idle within a few hundred turns; more means something spins.
_SETTLE_TURNS = 100_000
_EPOCH = 1_700_000_000.0


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._start = start
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    # -- app.clock.Clock -----------------------------------------------------------------

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return _EPOCH + (self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        done = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: done.done() or done.set_result(None))
        await done

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set() or seconds <= 0:
            await asyncio.sleep(0)
            return event.is_set()
        done = asyncio.get_running_loop().create_future()

        def fire() -> None:
            if not done.done():
                done.set_result(None)

        self.call_later(seconds, fire)
        setter = asyncio.ensure_future(event.wait())
        setter.add_done_callback(lambda _: fire())
        try:
            await done
        finally:
            setter.cancel()
        return event.is_set()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._now + max(seconds, 0.0), next(self._order), callback))

    # -- for the test ----------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass: every timer due meanwhile fires at its time, and whatever it
        wakes runs before time moves on."""
        target = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            self._now = max(self._now, self._timers[0][0])
            while self._timers and self._timers[0][0] <= self._now:
                _, _, callback = heapq.heappop(self._timers)
                callback()
            await self.settle()
        self._now = max(self._now, target)
        await self.settle()

    async def settle(self) -> None:
        """Run the loop until nothing but this task is ready: every other task waits on this
        clock or on an event. asyncio offers no public "idle" signal; its ready queue is it."""
        loop = asyncio.get_running_loop()
        ready = loop._ready  # type: ignore[attr-defined]
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
            if not ready:
                return
        raise RuntimeError("the loop never went idle: something spins without waiting")
