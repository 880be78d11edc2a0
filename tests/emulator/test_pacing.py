"""The scripted agent's paces: the steps of a reply, their ranges, the canned share and the bot
line, drawn from seeded generators (no clock, no sleeps)."""

from __future__ import annotations

import random

import pytest

from app.emulator import EmulatorConfig
from app.emulator.agent import GOODBYE, REPLIES
from app.emulator.pacing import (
    DEMO,
    FIXED,
    MODEL,
    PACES,
    Pace,
    Step,
    describe,
    fixed,
    opening,
    reply,
    typing_range,
)

SAMPLE = 2000


def within(value: float, span: tuple[float, float]) -> bool:
    low, high = span
    return low - 1e-9 <= value <= high + 1e-9


def test_fixed_is_todays_agent_and_the_default() -> None:
    """Typing 1 s after the message, the text 0.5 s later with the typing stopped at once."""
    assert reply(FIXED, random.Random(1), REPLIES[0]) == [
        Step(1.0, "typing_on"),
        Step(1.5, "say"),
        Step(1.5, "typing_off"),
    ]
    assert opening(FIXED, random.Random(1)) == (None, 2.0)
    assert EmulatorConfig().agent_pace == FIXED
    fast = EmulatorConfig(agent_join_delay_s=0.05, agent_reply_delay_s=0.05, agent_typing_s=0.02)
    assert fast.agent_pace == fixed(0.05, 0.05, 0.02)
    assert EmulatorConfig(pace=DEMO, agent_reply_delay_s=9).agent_pace is DEMO


@pytest.mark.parametrize("pace", [FIXED, DEMO, MODEL], ids=lambda pace: pace.name)
@pytest.mark.parametrize("text", [REPLIES[1], GOODBYE, "x" * 400])
def test_every_reply_is_announced_by_typing_within_the_ranges(pace: Pace, text: str) -> None:
    rng = random.Random(7)
    for _ in range(SAMPLE // 10):
        steps = reply(pace, rng, text)
        typing_on, said, typing_off, *canned = steps
        assert [typing_on.action, said.action, typing_off.action] == [
            "typing_on",
            "say",
            "typing_off",
        ]
        assert within(typing_on.at, pace.think_s)
        assert within(said.at - typing_on.at, typing_range(pace, text))
        assert typing_off.at == said.at
        # A canned line comes after the typed reply, alone: no typing notice of its own.
        assert [step.action for step in canned] in ([], ["say_canned"])
        for step in canned:
            assert within(step.at - said.at, pace.canned_s)


@pytest.mark.parametrize(
    ("pace", "text", "expected"),
    [
        (FIXED, "Hi", (0.5, 0.5)),
        (FIXED, "x" * 100, (0.5, 0.5)),
        (DEMO, "", (4.0, 5.0)),
        (DEMO, "x" * 50, (5.5, 6.5)),
        (MODEL, "x" * 50, (4.0, 15.0)),
    ],
)
def test_typing_takes_longer_for_longer_replies(
    pace: Pace, text: str, expected: tuple[float, float]
) -> None:
    assert typing_range(pace, text) == pytest.approx(expected)


def test_the_demo_types_long_enough_to_be_seen_at_the_base_poll_cadence() -> None:
    """At 5 s between polls after the customer's send, the shortest reply must land later, with
    its typing notice standing across that poll."""
    shortest = min(map(len, REPLIES))
    assert DEMO.think_s[1] < 5.0
    assert DEMO.think_s[0] + typing_range(DEMO, "x" * shortest)[0] >= 6.0
    assert typing_range(DEMO, "x" * shortest)[0] >= 2.0


@pytest.mark.parametrize(
    ("pace", "share"), [(FIXED, 0.0), (DEMO, 0.3), (MODEL, 0.4)], ids=["fixed", "demo", "model"]
)
def test_the_canned_share_over_a_seeded_sample(pace: Pace, share: float) -> None:
    rng = random.Random(2026)
    with_canned = sum(len(reply(pace, rng, REPLIES[0])) == 4 for _ in range(SAMPLE))
    assert abs(with_canned / SAMPLE - share) < 0.03
    assert pace.canned_share == share


def test_a_goodbye_gets_no_canned_line() -> None:
    rng = random.Random(3)
    for _ in range(200):
        assert len(reply(DEMO, rng, GOODBYE, canned=False)) == 3


def test_same_seed_same_steps() -> None:
    first = [reply(DEMO, random.Random(11), REPLIES[0]) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert reply(DEMO, random.Random(12), REPLIES[0]) != first[0]


def test_the_demo_bot_speaks_first_then_the_agent_joins() -> None:
    rng = random.Random(5)
    for _ in range(SAMPLE):
        bot, join = opening(DEMO, rng)
        assert bot is not None
        assert within(bot, (0.5, 3.0))
        assert within(join, DEMO.join_s)
        assert bot < join


@pytest.mark.parametrize("pace", [FIXED, MODEL], ids=lambda pace: pace.name)
def test_no_bot_unless_the_pace_has_one(pace: Pace) -> None:
    rng = random.Random(5)
    for _ in range(200):
        bot, join = opening(pace, rng)
        assert bot is None
        assert within(join, pace.join_s)


def test_a_bot_never_speaks_after_the_agent_joined() -> None:
    late = Pace("late", join_s=(1.0, 2.0), think_s=(0, 0), typing_s=(0, 0), bot_s=(0.5, 3.0))
    rng = random.Random(9)
    openings = [opening(late, rng) for _ in range(SAMPLE)]
    assert any(bot is None for bot, _ in openings)
    assert any(bot is not None for bot, _ in openings)
    assert all(bot is None or bot < join for bot, join in openings)


@pytest.mark.parametrize(
    "fields",
    [
        {"join_s": (3.0, 1.0)},
        {"think_s": (-1.0, 1.0)},
        {"typing_per_char_s": -0.1},
        {"canned_share": 1.5},
        {"bot_s": (2.0, 1.0)},
    ],
)
def test_a_pace_refuses_impossible_ranges(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"join_s": (1.0, 2.0), "think_s": (0, 0), "typing_s": (0, 0)}
    with pytest.raises(ValueError, match="must"):
        Pace("bad", **{**base, **fields})  # type: ignore[arg-type]


def test_the_help_describes_every_pace() -> None:
    assert sorted(PACES) == ["demo", "fixed", "model"]
    assert describe(FIXED) == "joins after 2 s; starts typing 1 s after each message, for 0.5 s"
    assert describe(DEMO) == (
        "a bot line 0.5-3 s after RequestChat; joins after 3-6 s; starts typing 1-2 s after "
        "each message, for 4-5 s + 0.03 s a character; 30 % of replies get a canned "
        "follow-up 1.5-4 s later"
    )


def test_the_model_pace_is_the_bench_models() -> None:
    """`--pace model` shows the conversations the bench measures: the same ranges."""
    from bench.conversation_model import MODEL as BENCH

    assert MODEL.join_s == BENCH.queue_wait_s
    assert MODEL.think_s == BENCH.typing_after_s
    assert MODEL.typing_s == BENCH.typing_for_s
    assert MODEL.canned_share == BENCH.canned_share
    assert MODEL.canned_s == BENCH.canned_after_s
