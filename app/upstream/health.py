"""The upstream's health as this process saw it, and the two judgements made of it.

Owns the record (when a call last succeeded, when one last failed: written by
`upstream.UpstreamClient` after every call and readiness probe) and both windows it is read
through: readiness (`/readyz`) trusts an answer within `READY_WINDOW_S` and otherwise asks the
client's shared probe, which runs at most once per that window; availability
(`/api/v2/availability`) says "unavailable" while a failure within `FAILING_WINDOW_S` has had
no success after it. Times are monotonic seconds, the clock injected. It must not call the
upstream (only `client.py` does) nor decide what a route answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Readiness must not cost the upstream one request per probe of every load balancer: calls
# answered within this say enough, and the probe itself runs at most once per this.
READY_WINDOW_S = 5.0
# Availability: a failure this recent, with no success since, means customers cannot chat
# now; an older one says nothing about now.
FAILING_WINDOW_S = 30.0


class UpstreamHealth:
    """One per process. `succeeded`/`failed` record a call's outcome (a rejection of one
    request, such as "not found", is neither: it says nothing of the upstream's health);
    `answered_recently` and `failing` judge the record. Never raises, never blocks."""

    def __init__(
        self,
        *,
        ready_window_s: float = READY_WINDOW_S,
        failing_window_s: float = FAILING_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ready_window_s = ready_window_s
        self.failing_window_s = failing_window_s
        self.clock = clock
        self.last_success: float | None = None
        self.last_failure: float | None = None

    def succeeded(self, at: float | None = None) -> None:
        self.last_success = self.clock() if at is None else at

    def failed(self, at: float | None = None) -> None:
        self.last_failure = self.clock() if at is None else at

    def answered_recently(self, now: float | None = None) -> bool:
        """Readiness without a probe: a call succeeded within the readiness window and none
        failed within it."""
        moment = self.clock() if now is None else now
        window = self.ready_window_s
        success, failure = self.last_success, self.last_failure
        recent_ok = success is not None and moment - success < window
        recent_failure = failure is not None and moment - failure < window
        return recent_ok and not recent_failure

    def failing(self, now: float | None = None) -> bool:
        """Availability: failed within the failing window, and nothing succeeded since."""
        moment = self.clock() if now is None else now
        failure, success = self.last_failure, self.last_success
        if failure is None or moment - failure > self.failing_window_s:
            return False
        return success is None or success < failure
