"""How the upstream's health is judged: one record (`UpstreamHealth`) read through two windows.
In this process against the emulator: readiness (`/readyz`: one shared probe, a recent answer
reused, trouble reported with a 200) and availability (`/availability`: unavailable while the
last upstream call failed, for a while); and the two judgements as tables."""

from __future__ import annotations

import pytest

from app.emulator.faults import Faults
from app.errors import UpstreamUnavailableError
from app.upstream.health import FAILING_WINDOW_S, READY_WINDOW_S, UpstreamHealth
from tests.unit.stack import Exchange, Stack, stack


def upstream_up(s: Stack) -> float | None:
    return s.runtime.metrics.registry.get_sample_value(
        "bff_dependency_up", {"dependency": "upstream"}
    )


async def test_readiness_probes_the_upstream_once_and_reuses_a_recent_answer() -> None:
    async with stack() as s, s.http() as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 200
        assert answer.json()["status"] == "ready" and answer.json()["upstream"] == "ok"
        assert s.emulator.request_count == 1
        assert upstream_up(s) == 1
        for _ in range(3):
            assert (await http.get("/readyz")).json()["upstream"] == "ok"
        assert s.emulator.request_count == 1


async def test_a_recent_call_answers_for_the_upstream_and_a_recent_failure_asks_again() -> None:
    async with stack() as s, s.http() as http:
        await s.runtime.upstream.request_chat("Ann", "help")
        assert (await http.get("/readyz")).json()["upstream"] == "ok"
        assert s.emulator.request_count == 1  # the customer's call said enough
        s.emulator.set_faults(Faults(outage=True, remaining=1))
        with pytest.raises(UpstreamUnavailableError):
            await s.runtime.upstream.request_chat("Ben", "help")
        assert (await http.get("/readyz")).json()["upstream"] == "ok"
        assert s.emulator.request_count == 3  # the failure made readiness probe


async def test_an_upstream_that_does_not_answer_leaves_readiness_at_200_degraded() -> None:
    async with stack() as s, s.http() as http:
        s.emulator.set_faults(Faults(drop_connection=True))
        answer = await http.get("/readyz")
        # Shared by every instance: were readiness to fail on it, all would leave at once.
        assert answer.status_code == 200
        assert answer.json()["status"] == "degraded"
        assert answer.json()["upstream"] == "unavailable"
        assert upstream_up(s) == 0


async def test_an_upstream_answering_with_errors_is_answering() -> None:
    async with stack() as s, s.http() as http:
        s.emulator.set_faults(Faults(outage=True))
        assert (await http.get("/readyz")).json()["upstream"] == "ok"


async def test_readiness_is_a_503_when_this_instance_is_full_or_draining() -> None:
    async with stack(max_streams=1) as s, s.http() as http:
        ref = s.chat("chat-only")
        await s.polled_elsewhere(ref)
        stream = Exchange(s.app, f"/api/v2/chats/{ref.handle}/events", "198.51.100.5")
        assert await stream.open() == 200
        full = await http.get("/readyz")
        assert (full.status_code, full.json()["status"]) == (503, "full")
        assert full.headers["retry-after"] == "5"
        await stream.disconnect()
        assert (await http.get("/readyz")).status_code == 200
        s.runtime.draining.set()
        draining = await http.get("/readyz")
        assert (draining.status_code, draining.json()) == (503, {"status": "draining"})


async def test_availability_is_unavailable_after_a_failed_call_until_one_succeeds() -> None:
    async with stack() as s, s.http() as http:
        assert (await http.get("/api/v2/availability")).json()["open"] is True
        s.emulator.set_faults(Faults(outage=True, remaining=1))
        with pytest.raises(UpstreamUnavailableError):
            await s.runtime.upstream.request_chat("Ann", "help")
        closed = (await http.get("/api/v2/availability")).json()
        assert (closed["open"], closed["reason"]) == (False, "unavailable")
        await s.runtime.upstream.request_chat("Ann", "help")
        assert (await http.get("/api/v2/availability")).json()["open"] is True


NOW = 10_000.0


def record(failure_ago: float | None, success_ago: float | None) -> UpstreamHealth:
    health = UpstreamHealth(clock=lambda: NOW)
    if success_ago is not None:
        health.succeeded(NOW - success_ago)
    if failure_ago is not None:
        health.failed(NOW - failure_ago)
    return health


@pytest.mark.parametrize(
    ("failure_ago", "success_ago", "failing"),
    [
        (None, None, False),  # never failed
        (None, 1.0, False),
        (1.0, None, True),  # failed, nothing succeeded yet
        (1.0, 2.0, True),  # failed after the last success
        (2.0, 1.0, False),  # succeeded since
        (FAILING_WINDOW_S - 1, None, True),
        (FAILING_WINDOW_S + 1, None, False),  # too long ago to judge by
    ],
)
def test_availability_judges_by_the_failing_window(
    failure_ago: float | None, success_ago: float | None, failing: bool
) -> None:
    assert record(failure_ago, success_ago).failing() is failing


@pytest.mark.parametrize(
    ("failure_ago", "success_ago", "answered"),
    [
        (None, None, False),  # nothing known: probe
        (None, 1.0, True),  # a call just answered: enough
        (None, READY_WINDOW_S + 1, False),  # too long ago: probe
        (1.0, 2.0, False),  # a recent failure: probe, whatever succeeded
        (2.0, 1.0, False),  # even with a success after it
        (READY_WINDOW_S + 1, 1.0, True),  # an old failure does not count
    ],
)
def test_readiness_trusts_only_the_ready_window(
    failure_ago: float | None, success_ago: float | None, answered: bool
) -> None:
    assert record(failure_ago, success_ago).answered_recently() is answered


def test_one_record_serves_both_windows_and_the_shorter_one_is_readiness() -> None:
    health = record(failure_ago=READY_WINDOW_S + 1, success_ago=READY_WINDOW_S + 2)
    # A failure too old for readiness to probe about is still news to availability.
    assert health.failing()
    assert READY_WINDOW_S < FAILING_WINDOW_S
    health.succeeded()
    assert health.answered_recently() and not health.failing()


async def test_the_client_writes_the_record_the_routes_read() -> None:
    async with stack() as s:
        health = s.runtime.upstream.health
        assert health.last_success is None
        await s.runtime.upstream.request_chat("Ann", "help")
        assert health.answered_recently()
        s.emulator.set_faults(Faults(outage=True, remaining=1))
        with pytest.raises(UpstreamUnavailableError):
            await s.runtime.upstream.request_chat("Ben", "help")
        assert health.failing() and not health.answered_recently()
