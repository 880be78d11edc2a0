"""Load shedding: a cap on the SSE streams one process holds (`BFF_MAX_STREAMS`).

Owns the count of this process's open streams and the refusal beyond the cap: 503 with
`Retry-After`, which a load balancer may retry on another instance and a client retries later.
Memory grows with open streams while CPU hardly does, so without a cap an instance would be
OOM-killed before an autoscaler on CPU adds one. It must not count anything but streams.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import OverloadedError

RETRY_AFTER_S = 2


class StreamCapacity:
    def __init__(self, limit: int, *, on_refuse: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.open = 0
        self._on_refuse = on_refuse

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def check(self) -> None:
        """Before a stream starts: OverloadedError when this process already holds the cap."""
        if self.full:
            if self._on_refuse is not None:
                self._on_refuse()
            raise OverloadedError(retry_after_s=RETRY_AFTER_S)

    def enter(self) -> None:
        self.open += 1

    def leave(self) -> None:
        self.open = max(0, self.open - 1)
