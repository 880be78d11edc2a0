"""The shipped schedule against a client polling state + messages every 3 s, simulated on the
bench's conversation model (`bench/schedule_sim.py`): hundreds of conversations, every event
pooled, in about a second. The bench proves it on servers over a dozen conversations; this
holds the design to it on enough events that the percentiles mean something."""

from __future__ import annotations

import statistics

import pytest

from app.core.schedule import Budget
from bench.conversation_model import CLASSES
from bench.schedule_sim import Outcome, percentile, pooled


@pytest.fixture(scope="module")
def arms() -> tuple[Outcome, Outcome]:
    result = pooled(range(1000, 1030), Budget())
    return result["chat-bff"], result["baseline 3 s"]


@pytest.mark.parametrize("kind", CLASSES)
def test_every_kind_of_event_comes_no_later_than_polling_every_3_s(
    arms: tuple[Outcome, Outcome], kind: str
) -> None:
    ours, theirs = arms[0].delays[kind], arms[1].delays[kind]
    assert len(ours) == len(theirs) >= 150
    for q in (50, 99):
        assert percentile(ours, q) <= percentile(theirs, q), (kind, q)
    assert statistics.mean(ours) <= statistics.mean(theirs), kind


def test_for_two_thirds_of_the_reads_at_most(arms: tuple[Outcome, Outcome]) -> None:
    ours, theirs = arms
    assert ours.reads_per_min <= 0.7 * theirs.reads_per_min
    # The budget holds: reads stay under it, whatever the conversation.
    assert ours.reads_per_min <= Budget().reads_per_min


def test_bots_and_typed_replies_are_seen_within_a_second(arms: tuple[Outcome, Outcome]) -> None:
    ours = arms[0].delays
    assert percentile(ours["bot"], 50) <= 1.0
    assert percentile(ours["typed"], 50) <= 0.6
