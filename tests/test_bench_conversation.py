"""The benchmark's conversation model, oracle and per-class report, as tables: the classes are
drawn in the shares and windows the model states (seeded), the oracle places its reads where
replies come (evenly over a uniform window when every read is paid, densely in the seconds
after a customer's message to a bot), and the results show each class's figures in its own
column and judge each class against the baseline. The measurements are in bench/conversation.py.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import pytest

from bench.conversation_figures import classify
from bench.conversation_model import (
    CLASSES,
    HANDOVER,
    MODEL,
    Model,
    Step,
    class_counts,
    conversation,
    run_scripts,
)
from bench.oracle import calibrate, place, simulate, simulate_run
from bench.report_conversation import CLASS_LABELS, conversation_details, conversation_targets

SEEDS = range(1000, 1300)


def scripts(bot_first: bool, model: Model = MODEL) -> list[list[Step]]:
    return [conversation(seed, model, bot_first=bot_first) for seed in SEEDS]


# -- the model ---------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_script_and_another_seed_another() -> None:
    assert conversation(7, bot_first=True) == conversation(7, bot_first=True)
    assert conversation(7) != conversation(8)


@pytest.mark.parametrize(
    ("canned_share", "low", "high"),
    [(0.4, 0.35, 0.45), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.2, 0.15, 0.25)],
)
def test_the_canned_share_of_agent_replies_is_the_one_configured(
    canned_share: float, low: float, high: float
) -> None:
    counts = class_counts(scripts(False, Model(canned_share=canned_share)))
    share = counts["canned"] / (counts["canned"] + counts["typed"])
    assert low <= share <= high
    assert counts["typing"] == counts["typed"]  # every typed reply has its notice


@pytest.mark.parametrize(
    ("bot_first", "bots_per_chat"),
    [(True, (3, 5)), (False, (0, 0))],  # a greeting plus an answer to each of 2-4 messages
)
def test_every_chat_has_one_join_and_one_end_and_bots_only_when_bot_first(
    bot_first: bool, bots_per_chat: tuple[int, int]
) -> None:
    for script in scripts(bot_first):
        kinds = [s.kind for s in script if s.kind]
        assert kinds.count("join") == 1
        assert kinds[-1] == "end"
        assert kinds.count("end") == 1
        assert bots_per_chat[0] <= kinds.count("bot") <= bots_per_chat[1]
        assert script[-1].action == "leave"


def _gaps(script: list[Step], kind: str) -> list[float]:
    """For each event of `kind`, the time since what it answers: a bot or agent reply since the
    customer's last send (a bot's greeting: since RequestChat), a typed reply since its typing
    notice, the join since the queue began, the end since the agent's last reply."""
    gaps, last_send, last_reply, typing_at, queue_from = [], 0.0, 0.0, 0.0, 0.0
    for step in script:
        if step.action == "SendMessage":
            last_send = step.at
        if step.kind == kind:
            since = {
                "bot": last_send,
                "canned": last_send,
                "typing": last_send,
                "typed": typing_at,
                "join": queue_from,
                "end": last_reply,
            }[kind]
            gaps.append(step.at - since)
        if step.kind == "typing":
            typing_at = step.at
        if step.kind == "bot" and step.text.endswith(HANDOVER):
            queue_from = step.at
        if step.kind in ("typed", "canned", "join"):
            last_reply = step.at
    return gaps


@pytest.mark.parametrize(
    ("kind", "window", "bot_first"),
    [
        ("bot", MODEL.bot_reply_s, True),
        ("canned", MODEL.canned_after_s, False),
        ("typing", MODEL.typing_after_s, False),
        ("typed", MODEL.typing_for_s, False),
        ("join", MODEL.queue_wait_s, False),
        ("join", MODEL.queue_wait_s, True),
        ("end", MODEL.end_after_s, False),
    ],
)
def test_each_class_comes_in_its_window_spread_over_it(
    kind: str, window: tuple[float, float], bot_first: bool
) -> None:
    gaps = [g for script in scripts(bot_first) for g in _gaps(script, kind)]
    lo, hi = window
    assert len(gaps) >= 100
    assert all(lo <= g <= hi for g in gaps)
    # Uniform: the mean in the middle, both halves of the window used.
    assert statistics.fmean(gaps) == pytest.approx((lo + hi) / 2, rel=0.1)
    assert min(gaps) < lo + (hi - lo) / 4 and max(gaps) > hi - (hi - lo) / 4


def test_the_agent_ends_only_after_the_talk_time_and_a_run_mixes_bot_first_chats() -> None:
    for script in scripts(False):
        joined = next(s.at for s in script if s.kind == "join")
        replies = [s.at for s in script if s.kind in ("typed", "canned")]
        assert replies[-1] - joined >= MODEL.talk_s
        assert all(r - joined < MODEL.talk_s for r in replies[:-1])
    run = run_scripts(1, 6)
    assert [any(s.kind == "bot" for s in script) for script in run] == [True, False, False] * 2


# -- classification of what viewers see ----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "Text", "text": "agent 1:2", "from": {"type": "Agent"}}, "typed"),
        ({"type": "Text", "text": "canned 1:2", "from": {"type": "Agent"}}, "canned"),
        ({"type": "Text", "text": "bot 1:0", "from": {"type": "External"}}, "bot"),
        ({"type": "TypingStarted", "from": {"type": "Agent"}}, "typing"),
        ({"type": "ParticipantJoined", "from": {"type": "Agent"}}, "join"),
        ({"type": "ParticipantLeft", "from": {"type": "Agent"}}, "end"),
        ({"type": "Text", "text": "customer 1:1", "from": {"type": "Customer"}}, "echo"),
        ({"type": "Text", "text": "Hello, I am Kristi", "from": {"type": "Agent"}}, None),
        ({"type": "Notice", "text": "Agent joined", "from": {"type": "External"}}, None),
        ({"type": "TypingStopped", "from": {"type": "Agent"}}, None),
        ({"type": "TypingStarted", "from": {"type": "Customer"}}, None),
        ({"type": "ParticipantJoined", "from": {"type": "Customer"}}, None),
    ],
)
def test_transcript_entries_are_classified(message: dict[str, Any], expected: str | None) -> None:
    assert classify(message) == expected


# -- the oracle --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "lam", "expected"),
    [
        ((0.0, 6.0), 0.35, [2.0, 4.0, 6.0]),
        ((10.0, 20.0), 0.5, [10.0, 10 + 10 / 3, 10 + 20 / 3, 20.0]),
        ((0.5, 3.0), 0.05, [1.0, 1.5, 2.0, 2.5, 3.0]),
    ],
)
def test_with_every_read_paid_a_uniform_window_gets_evenly_spaced_reads(
    window: tuple[float, float], lam: float, expected: list[float]
) -> None:
    # (10, 20): the keep-alive forces a read by 10, which lands on the window's start.
    polls = place(((1.0, window),), 0.0, lam, pay_always=True)
    assert polls == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("window", [(0.0, 6.0), (8.0, 40.0), (10.0, 300.0)])
def test_reads_paid_only_when_made_thicken_late_in_a_uniform_window(
    window: tuple[float, float],
) -> None:
    polls = place(((1.0, window),), 0.0, 0.3)
    inside = [p for p in polls if p > window[0]]
    gaps = [b - a for a, b in itertools.pairwise(inside)]
    assert polls[-1] == pytest.approx(window[1])
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[0] > gaps[-1]
    assert all(b - a <= 10.0 + 1e-6 for a, b in itertools.pairwise([0.0, *polls]))


def test_a_window_already_partly_past_is_planned_from_where_it_stands() -> None:
    polls = place(((1.0, (0.0, 10.0)),), 6.0, 0.1, pay_always=True)
    assert all(6.0 < p <= 10.0 for p in polls)
    assert polls[-1] == pytest.approx(10.0)


def test_the_oracle_reads_densely_right_after_a_customer_message_to_a_bot() -> None:
    script = conversation(3, bot_first=True)
    result = simulate(script, bot_first=True, lam=0.2)
    handover = next(s.at for s in script if s.text.endswith(HANDOVER))
    sends = [s.at for s in script if s.action == "SendMessage" and s.at < handover]
    soon = [p for p in result.polls if any(0 < p - s <= MODEL.bot_reply_s[1] for s in sends)]
    later = [p for p in result.polls if p < handover and not any(0 < p - s <= 3.0 for s in sends)]
    window_s = len(sends) * MODEL.bot_reply_s[1]
    assert len(soon) / window_s > 4 * len(later) / (handover - window_s)
    assert max(result.delays["bot"]) < 1.0
    delivered = sum(len(delays) for delays in result.delays.values())
    assert delivered == sum(1 for s in script if s.kind)


def test_calibration_spends_no_more_than_the_reads_given_and_more_reads_buy_less_delay() -> None:
    run = run_scripts(11, 3)
    bot_first = [True, False, False]
    means = []
    for reads in (150, 300, 600):  # the keep-alive alone costs about 100
        _, result = calibrate(run, bot_first, reads)
        assert reads * 0.85 <= result.reads <= reads
        means.append(statistics.fmean(d for ds in result.delays.values() for d in ds))
    assert means == sorted(means, reverse=True)
    cheap = simulate_run(run, bot_first, 1e-3)
    assert cheap.reads > 600  # a nearly free read is spent everywhere


# -- the report's per-class table ----------------------------------------------------------------


def _latency(p50: float, p99: float) -> dict[str, Any]:
    return {"samples": 10, "p50_s": p50, "p99_s": p99, "mean_s": p50, "max_s": p99}


def _row(arm: str, kind: str, reads: float, scale: float, **extra: Any) -> dict[str, Any]:
    return {
        "arm": arm,
        "kind": kind,
        "instances": extra.get("instances", 0),
        "viewers": 1,
        "interval_s": extra.get("interval_s"),
        "budget": None,
        "reads_per_chat_minute": reads,
        "writes_per_chat_minute": 3.0,
        # Each class its own figures: class k has p50 k+1 (times scale), p99 ten times that.
        "classes": {
            c: _latency((k + 1) * scale, (k + 1) * scale * 10) for k, c in enumerate(CLASSES)
        },
        "all_classes": _latency(1.0, 2.0),
        "echo": _latency(0.03, 0.09),
        "undelivered": 0,
        "failed_steps": 0,
    }


CONV = {
    "conversations": 2,
    "chat_minutes": 10.0,
    "seed": 5,
    "model": {"queue_wait_s": [10.0, 300.0], "talk_s": 150.0, "canned_share": 0.4},
    "class_events": dict.fromkeys(CLASSES, 1),
    "schedule": {"poll_interval_s": 5.0},
    "rows": [
        _row("chat-bff, 1 instance, 1 viewers", "chat-bff", 10.0, 0.1, instances=1),
        _row(
            "baseline state+messages every 3 s, 1 viewers",
            "state+messages",
            40.0,
            0.2,
            interval_s=3.0,
        ),
    ],
    "oracle": [],
    "conversation_reads_ratio_1_viewer": 4.0,
}


def test_the_per_class_table_shows_each_class_in_its_column() -> None:
    lines = conversation_details(CONV, None)
    header = next(x for x in lines if x.startswith("| Arm | Reads/chat-min | typed"))
    assert header.split(" | ")[2:8] == list(CLASS_LABELS)
    ours = next(x for x in lines if x.startswith("| chat-bff, 1 instance, 1 viewers | 10.0"))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[2:8] == [f"{(k + 1) * 0.1:.2f} / {(k + 1):.2f}" for k in range(len(CLASSES))]


def test_each_class_is_judged_against_the_baseline_on_p50_and_p99() -> None:
    rows: list[tuple[str, Any, Any, bool | None]] = []

    def row(what: str, target: str, ours: Any, base: Any, ratio: str, ok: Any) -> None:
        try:
            verdict = ok()
        except TypeError:  # a figure this table leaves out (the report shows a dash)
            verdict = None
        rows.append((what, ours, base, verdict))

    conversation_targets(CONV, row)
    by_class = [x for x in rows if "delivery p50 / p99" in x[0]]
    assert [x[0].split(": ")[1].split(",")[0] for x in by_class] == list(CLASS_LABELS.values())
    assert all(x[3] for x in by_class)  # ours are half the baseline's in every class
    worse = {
        **CONV,
        "rows": [
            CONV["rows"][0]
            | {"classes": {**CONV["rows"][0]["classes"], "bot": _latency(0.1, 99.0)}},
            CONV["rows"][1],
        ],
    }
    rows.clear()
    conversation_targets(worse, row)
    verdicts = {x[0]: x[3] for x in rows if "delivery p50 / p99" in x[0]}
    assert [k for k, ok in verdicts.items() if not ok] == [
        "Conversation, 1 viewer: bot replies, delivery p50 / p99, s"
    ]
