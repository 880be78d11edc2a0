"""This instance's view of the fleet's histograms: a cached snapshot, and observations sent on.

Owns how often the fleet's histograms are read (at most every `refresh_s`, by whichever poller
needs them first; never a bus call per poll) and that the bus's trouble never stops a poller
(the last snapshot stays, an observation is dropped). It must not decide delays
(`schedule.py`) nor poll.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.bus.fleet import FleetStats, Histograms, empty
from app.clock import SYSTEM_CLOCK, Clock
from app.core.turn import Observation
from app.errors import BffError

log = logging.getLogger("chat_bff.poller")


class FleetView:
    def __init__(
        self, stats: FleetStats, *, refresh_s: float = 10.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._refresh_s = refresh_s
        self._histograms: Histograms = empty()
        self._read_at = -1e9
        self._reading = False

    async def histograms(self) -> Histograms:
        """The cached snapshot, read again first when older than `refresh_s` (by one caller:
        the others meanwhile get the cached one)."""
        now = self._clock.monotonic()
        if now - self._read_at >= self._refresh_s and not self._reading:
            self._reading = True
            try:
                self._histograms = await self._stats.snapshot()
            except BffError as error:
                log.info("fleet histograms not refreshed: %s", type(error).__name__)
            finally:
                self._read_at = now
                self._reading = False
        return self._histograms

    async def observe(self, observations: Sequence[Observation]) -> None:
        for observation in observations:
            try:
                await self._stats.observe(observation.kind, observation.seconds)
            except BffError as error:
                log.info("fleet observation dropped: %s", type(error).__name__)
                return
