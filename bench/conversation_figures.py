"""The conversation scenario's figures, from what its arms recorded: per arm, reads and writes
per chat-minute and each reply class's delivery (p50, p99, mean) to every viewer; the headline
figures; the oracle at the same reads as chat-bff (`bench/oracle.py`, per class: chat-bff's
mean delay as a ratio to it); and the frontier (reads per chat-minute against p50 delivery of
every class pooled, for the baselines at each interval, chat-bff at each budget, and the oracle
at the same reads). Pure: no I/O; `conversation.py` runs the arms and hands their records here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile, r
from bench.conversation_model import CLASSES, TEXT_PREFIX, Model, Step, agent_typing_share
from bench.oracle import calibrate

POLL_SETTINGS = (
    "poll_read_budget",
    "poll_floor_s",
    "poll_ceiling_s",
    "poll_history_half_life_s",
    "poll_interval_s",
    "poll_fast_interval_s",
    "poll_idle_interval_s",
    "poll_keepalive_s",
)


def schedule_settings() -> dict[str, Any]:
    """The poll settings chat-bff ships with (app/config/), those this build has: scenarios
    measure the defaults and say which they were, rather than pin values of their own."""
    from app.config.settings import Settings

    fields = Settings.model_fields
    return {name: fields[name].default for name in POLL_SETTINGS if name in fields}


@dataclass
class ChatRecord:
    """What one arm's chat of one conversation left: the script it played, when each viewer
    got each index, the customer's sends, the upstream's transcript and request log."""

    arm: str
    upstream_id: str
    script: list[Step]
    delivered: list[dict[int, float]]
    sent_at: dict[str, float]
    failed_steps: int = 0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)


def classify(message: dict[str, Any]) -> str | None:
    """The class of a transcript entry a viewer waits for (`CLASSES`), `echo` for the
    customer's own Text, None for the rest (their typing, the platform's notice, the greeting
    that comes with the join, TypingStopped)."""
    sender = (message.get("from") or {}).get("type")
    kind, text = message.get("type"), message.get("text") or ""
    if sender == "Customer":
        return "echo" if kind == "Text" else None
    if kind == "Text":
        return next((c for c, prefix in TEXT_PREFIX.items() if text.startswith(prefix)), None)
    if sender == "Agent":
        return {
            "TypingStarted": "typing",
            "ParticipantJoined": "join",
            "ParticipantLeft": "end",
        }.get(str(kind))
    return None


@dataclass
class Samples:
    by_class: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    echo: list[float] = field(default_factory=list)
    undelivered: int = 0

    def pooled(self) -> list[float]:
        return [x for c in CLASSES for x in self.by_class[c]]


def collect(record: ChatRecord, final: float, into: Samples) -> None:
    """Every viewer's delay for each classified entry of the record's transcript (from the
    upstream's commit; echo: from the send). Not delivered: counted, and as delivered at
    `final`."""
    for message in record.transcript:
        what = classify(message)
        if what is None or "utcTime" not in message:
            continue
        index = int(message["index"])
        if what == "echo":
            sent = record.sent_at.get(message.get("text") or "")
            at = record.delivered[0].get(index) if record.delivered else None
            if sent is not None:
                into.undelivered += at is None
                into.echo.append((at if at is not None else final) - sent)
            continue
        committed = message["utcTime"] / 1000
        for table in record.delivered:
            at = table.get(index)
            into.undelivered += at is None
            into.by_class[what].append((at if at is not None else final) - committed)


def latency(samples: list[float]) -> dict[str, Any]:
    return {
        "samples": len(samples),
        "p50_s": r(percentile(samples, 50)),
        "p99_s": r(percentile(samples, 99)),
        "mean_s": r(statistics.fmean(samples)) if samples else float("nan"),
        "max_s": r(max(samples, default=float("nan"))),
    }


Arm = tuple[
    str, str, int, int, float, int | None
]  # name, kind, instances, viewers, interval, budget


def figures(
    *,
    arms: list[Arm],
    records: list[ChatRecord],
    model: Model,
    bot_first: list[bool],
    final: float,
) -> dict[str, Any]:
    rows, by_arm = [], {}
    for name, kind, instances, viewers, interval_s, budget in arms:
        samples = by_arm[name] = Samples()
        chats = [x for x in records if x.arm == name]
        reads = writes = failed = 0
        minutes = 0.0
        for record in chats:
            collect(record, final, samples)
            reads += sum(e["method"] == "GET" for e in record.requests)
            writes += 1 + sum(e["method"] == "POST" for e in record.requests)  # + RequestChat
            failed += record.failed_steps
            minutes += record.script[-1].at / 60
        rows.append(
            {
                "arm": name,
                "kind": kind,
                "instances": instances,
                "viewers": viewers,
                "interval_s": interval_s if kind != "chat-bff" else None,
                "budget": budget,
                "reads_per_chat_minute": r(reads / minutes, 2) if minutes else float("nan"),
                "reads": reads,
                "chat_minutes": r(minutes, 2),
                "writes_per_chat_minute": r(writes / minutes, 2) if minutes else float("nan"),
                "classes": {c: latency(samples.by_class[c]) for c in CLASSES},
                "all_classes": latency(samples.pooled()),
                "echo": latency(samples.echo),
                "undelivered": samples.undelivered,
                "failed_steps": failed,
            }
        )
    scripts = _scripts(records, arms[0][0])
    out = headline(rows, by_arm) | {
        "model": {k: getattr(model, k) for k in model.__dataclass_fields__},
        "chat_minutes": r(sum(s[-1].at for s in scripts) / 60, 2),
        "class_events": {c: sum(st.kind == c for s in scripts for st in s) for c in CLASSES},
        "agent_typing_share": r(sum(map(agent_typing_share, scripts)) / len(scripts)),
        "rows": rows,
        "timelines": {
            row["arm"]: timeline(next(x for x in records if x.arm == row["arm"]).requests)
            for row in rows
            if row["viewers"] == 1
            and row["instances"] <= 1
            and row["budget"] is None
            and row["kind"] != "messages"
            and row["interval_s"] in (None, 3.0)
        },
    }
    return out | oracle_figures(rows, scripts, bot_first, model)


def _scripts(records: list[ChatRecord], arm: str) -> list[list[Step]]:
    """The run's scripts in conversation order (every arm played them all)."""
    return [x.script for x in records if x.arm == arm]


def _find(
    rows: list[dict[str, Any]],
    kind: str,
    viewers: int,
    instances: int = 0,
    interval_s: float | None = 3.0,
    budget: int | None = None,
) -> dict[str, Any] | None:
    for x in rows:
        if (x["kind"], x["viewers"], x["instances"], x["budget"]) != (
            kind,
            viewers,
            instances,
            budget,
        ):
            continue
        if kind == "chat-bff" or x["interval_s"] == interval_s:
            return x
    return None


def headline(rows: list[dict[str, Any]], by_arm: dict[str, Samples]) -> dict[str, Any]:
    def ratio(base: dict[str, Any] | None, ours: dict[str, Any] | None) -> float | None:
        if base is None or ours is None or not ours["reads_per_chat_minute"]:
            return None
        return r(base["reads_per_chat_minute"] / ours["reads_per_chat_minute"], 2)

    growth = {}
    for n in (1, 3):
        low, high = _find(rows, "chat-bff", 1, n), _find(rows, "chat-bff", 20, n)
        if low and high and low["reads_per_chat_minute"]:
            growth[str(n)] = r(high["reads_per_chat_minute"] / low["reads_per_chat_minute"] - 1, 3)
    # The typed-reply and echo headlines pool the arms they describe, for samples enough for a
    # p99: typed replies over the 1-viewer chat-bff arms at the default budget, echoes over
    # every chat-bff arm.
    ours = {x["arm"]: by_arm[x["arm"]] for x in rows if x["kind"] == "chat-bff"}
    default_1 = [
        x["arm"]
        for x in rows
        if x["kind"] == "chat-bff" and x["viewers"] == 1 and x["budget"] is None
    ]
    typed = [v for arm in default_1 for v in ours[arm].by_class["typed"]]
    echo = [v for s in ours.values() for v in s.echo]
    one = _find(rows, "chat-bff", 1, 1) or {}
    return {
        "conversation_reads_ratio_1_viewer": ratio(_find(rows, "state+messages", 1), one),
        "conversation_reads_ratio_5_viewers": ratio(
            _find(rows, "state+messages", 5), _find(rows, "chat-bff", 5, 3)
        ),
        "conversation_agent_p50_s": r(percentile(typed, 50)),
        "conversation_agent_p99_s": r(percentile(typed, 99)),
        "conversation_bot_p50_s": (one.get("classes") or {}).get("bot", {}).get("p50_s"),
        "conversation_echo_p99_ms": r(percentile(echo, 99) * 1000, 1),
        "conversation_reads_growth_1_to_20_viewers": growth,
        "headline_samples": {"typed": len(typed), "echo": len(echo)},
    }


def oracle_figures(
    rows: list[dict[str, Any]], scripts: list[list[Step]], bot_first: list[bool], model: Model
) -> dict[str, Any]:
    """The oracle at the reads of each 1-viewer chat-bff arm (per class: chat-bff's mean
    delay over the oracle's) and of each 1-viewer state+messages baseline (the frontier)."""
    minutes = sum(s[-1].at for s in scripts) / 60
    oracle_rows, ratios = [], {}
    points = []
    for x in rows:
        if (
            x["viewers"] != 1
            or x["kind"] == "messages"
            or (x["kind"] == "chat-bff" and x["instances"] != 1)
        ):
            continue
        lam, result = calibrate(scripts, bot_first, x["reads"], model)
        classes = {c: latency(result.delays.get(c, [])) for c in CLASSES}
        pooled = [v for c in CLASSES for v in result.delays.get(c, [])]
        oracle_rows.append(
            {
                "at_reads_of": x["arm"],
                "price_s_per_read": r(lam, 5),
                "reads_per_chat_minute": r(result.reads / minutes, 2),
                "classes": classes,
                "all_classes": latency(pooled),
            }
        )
        if x["kind"] == "chat-bff":
            ratios[x["arm"]] = {
                c: _over(x["classes"][c]["mean_s"], classes[c]["mean_s"]) for c in CLASSES
            }
        points.append(
            {
                "arm": x["arm"],
                "kind": x["kind"],
                "interval_s": x["interval_s"],
                "budget": x["budget"],
                "reads_per_chat_minute": x["reads_per_chat_minute"],
                "p50_s": x["all_classes"]["p50_s"],
                "mean_s": x["all_classes"]["mean_s"],
            }
        )
        points.append(
            {
                "arm": f"oracle at the reads of {x['arm']}",
                "kind": "oracle",
                "interval_s": None,
                "budget": None,
                "reads_per_chat_minute": oracle_rows[-1]["reads_per_chat_minute"],
                "p50_s": oracle_rows[-1]["all_classes"]["p50_s"],
                "mean_s": oracle_rows[-1]["all_classes"]["mean_s"],
            }
        )
    default = next((v for k, v in ratios.items() if "budget" not in k), {})
    finite = {c: v for c, v in default.items() if v is not None}
    worst = max(finite, key=lambda c: finite[c], default=None)
    return {
        "oracle": oracle_rows,
        "oracle_ratio": ratios,
        "conversation_oracle_ratio_worst": None if worst is None else finite[worst],
        "oracle_ratio_worst_class": worst,
        "frontier": points,
    }


def _over(ours: float, oracle: float) -> float | None:
    try:
        value = ours / oracle
    except (TypeError, ZeroDivisionError):
        return None
    return r(value, 2) if value == value else None


def timeline(entries: list[dict[str, Any]]) -> list[str]:
    """One chat's upstream requests as "seconds operation" lines, from its first request."""
    if not entries:
        return []
    first = entries[0]["at"]
    lines = []
    for entry in entries:
        what = (
            "POST"
            if entry["method"] == "POST"
            else "GET " + ("messages" if entry["path"].endswith("/messages") else "chat")
        )
        lines.append(f"{entry['at'] - first:7.2f} {what}")
    return lines
