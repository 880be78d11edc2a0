"""Poll cadence as a table: fast after a send, steady while lively, slower when quiet but
within the keep-alive, exponential backoff with jitter and Retry-After on failures."""

from __future__ import annotations

import pytest

from app.cadence import Cadence, poll_delay

C = Cadence(interval_s=1.0, fast_s=0.25, idle_s=5.0, keepalive_s=10.0, backoff_max_s=30.0)
QUIET = 1e9


@pytest.mark.parametrize(
    ("since_activity", "since_poke", "failures", "retry_after", "jitter", "expected"),
    [
        (0.0, QUIET, 0, None, 0.5, 1.0),  # lively
        (19.9, QUIET, 0, None, 0.5, 1.0),  # still lively
        (0.0, 0.1, 0, None, 0.5, 0.25),  # right after a send
        (QUIET, 4.9, 0, None, 0.5, 0.25),  # a send wakes even a quiet chat
        (30.0, QUIET, 0, None, 0.5, 3.0),  # half-way to idle
        (40.0, QUIET, 0, None, 0.5, 5.0),  # idle
        (QUIET, QUIET, 0, None, 0.5, 5.0),  # idle stays idle
        (0.0, 0.0, 1, None, 0.0, 1.0),  # first failure: between 1 and 2 s
        (0.0, 0.0, 1, None, 0.999, 1.999),
        (0.0, 0.0, 3, None, 0.0, 4.0),  # 8 s ceiling, at least half
        (0.0, 0.0, 10, None, 0.0, 15.0),  # capped at 30 s ceiling
        (0.0, 0.0, 10, None, 0.999, 29.985),
        (0.0, 0.0, 1, 12, 0.0, 12.0),  # Retry-After wins when longer
        (0.0, 0.0, 50, None, 0.5, 22.5),  # no overflow after many failures
    ],
)
def test_poll_delay(
    since_activity: float,
    since_poke: float,
    failures: int,
    retry_after: int | None,
    jitter: float,
    expected: float,
) -> None:
    delay = poll_delay(
        C,
        since_activity_s=since_activity,
        since_poke_s=since_poke,
        failures=failures,
        retry_after_s=retry_after,
        jitter=jitter,
    )
    assert delay == pytest.approx(expected, abs=1e-3)


def test_quiet_chats_never_wait_longer_than_the_keepalive() -> None:
    slow = Cadence(interval_s=1.0, idle_s=30.0, keepalive_s=10.0)
    assert poll_delay(
        slow, since_activity_s=QUIET, since_poke_s=QUIET, failures=0, retry_after_s=None, jitter=0
    ) == pytest.approx(10.0)


def test_backoff_spreads_with_jitter() -> None:
    delays = {
        poll_delay(C, since_activity_s=0, since_poke_s=0, failures=4, retry_after_s=None, jitter=j)
        for j in (0.0, 0.25, 0.5, 0.75)
    }
    assert len(delays) == 4
    assert min(delays) >= 8.0
