"""Turns the scenarios' figures into the results files: `<prefix>.json` (the headline figures,
exactly HEADLINE_KEYS), `<prefix>.md` (target, ours, baseline, ratio, met) and
`<prefix>-details.json` (everything each scenario measured, plus the run's machine and date).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report_conversation import conversation_targets, write_frontier
from bench.report_details import details
from bench.report_format import DASH, fmt, get, ratio
from bench.report_hostile import hostile_details
from bench.report_topologies import topology_rows

HEADLINE_KEYS = (
    "upstream_requests_ratio",
    "delivery_p50_over_interval",
    "delivery_p99_over_interval",
    "echo_p99_ms",
    "idle_streams",
    "kib_per_stream",
    "baseline_kib_per_stream",
    "heartbeat_cpu_percent",
    "rest_overhead_p50_ms",
    "rest_overhead_p99_ms",
    "cached_reads_per_s",
    "failover_s",
    "lost",
    "duplicated",
    "conversation_reads_ratio_1_viewer",
    "conversation_reads_ratio_5_viewers",
    "conversation_agent_p50_s",
    "conversation_agent_p99_s",
    "conversation_bot_p50_s",
    "conversation_oracle_ratio_worst",
    "conversation_echo_p99_ms",
    "cached_reads_ratio_to_bare",
    "soak_server_errors",
    "soak_rss_growth",
    "hostile_within_ceilings",
    "hostile_honest_success",
    "hostile_echo_p99_ms",
)


def _clean(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _met(check: Callable[[], bool], quick: bool) -> str:
    if quick:
        return "(smoke)"
    try:
        return "met" if check() else "**missed**"
    except TypeError:
        return DASH


def _targets(res: dict[str, Any], quick: bool) -> list[str]:
    up = res.get("upstream_load", {})
    de = res.get("delivery", {})
    idle = res.get("idle_streams", {})
    rest = res.get("rest_overhead", {})
    fo = res.get("failover", {})
    interval = de.get("poll_interval_s", 1.0)
    rows = ["| What | Target | chat-bff | Baseline | Ratio | |", "|---|---|---|---|---|---|"]

    def row(what: str, target: str, ours: Any, base: Any, ratio: str, ok: Callable[[], bool]):
        rows.append(
            f"| {what} | {target} | {fmt(ours)} | {fmt(base)} | {ratio} | {_met(ok, quick)} |"
        )

    five = [
        x
        for x in up.get("rows", [])
        if x["workload"] == "lively" and x["viewers"] == 5 and x["arm"] != "1 instance"
    ]
    ours5 = next((x for x in five if x["arm"] == "3 instances"), {})
    base5 = next((x for x in five if x["arm"] == "baseline"), {})
    row(
        "Upstream requests per watched chat per second, lively chat, 5 viewers, 3 instances",
        ">= 10x fewer than baseline",
        ours5.get("requests_per_chat_per_s"),
        base5.get("requests_per_chat_per_s"),
        f"{fmt(up.get('upstream_requests_ratio'))}x fewer",
        lambda: up["upstream_requests_ratio"] >= 10,
    )
    quiet = up.get("quiet_ratio_5_viewers_3_instances")
    if quiet is not None:
        rows.append(
            f"| ... same, quiet chat (nobody talks; idle cadence) | >= 10x fewer | | | "
            f"{fmt(quiet)}x fewer | {_met(lambda: quiet >= 10, quick)} |"
        )
    conv = res.get("conversation", {})
    if conv:
        conversation_targets(conv, row)
    n = de.get("chats", "N")
    # p50 <= half an interval + 20 ms, p99 <= one interval + 50 ms.
    for pct, limit in (("p50", 0.5 + 0.02 / interval), ("p99", 1 + 0.05 / interval)):
        ours = de.get(f"delivery_{pct}_over_interval")
        base = get(de, "baseline", "agent", f"{pct}_over_interval")
        row(
            f"Delivery {pct} / poll interval ({interval:g} s), {n} watched chats",
            f"<= {limit:.2f}",
            ours,
            base,
            ratio(ours, base),
            lambda ours=ours, limit=limit: ours <= limit,
        )
    row(
        "Customer's send echoed on their stream, p99 ms",
        "<= 150",
        de.get("echo_p99_ms"),
        get(de, "baseline", "echo", "p99_ms"),
        ratio(de.get("echo_p99_ms"), get(de, "baseline", "echo", "p99_ms")),
        lambda: de["echo_p99_ms"] <= 150,
    )
    row(
        "Idle SSE streams held by one process",
        f">= {idle.get('target_streams', 10000):,}",
        idle.get("idle_streams"),
        get(idle, "baseline", "streams"),
        ratio(idle.get("idle_streams"), get(idle, "baseline", "streams")),
        lambda: idle["idle_streams"] >= 10_000,
    )
    row(
        "Memory per idle stream, KiB",
        "<= 30",
        idle.get("kib_per_stream"),
        idle.get("baseline_kib_per_stream"),
        ratio(idle.get("kib_per_stream"), idle.get("baseline_kib_per_stream")),
        lambda: idle["kib_per_stream"] <= 30,
    )
    row(
        f"CPU with all streams idle (heartbeat every {fmt(idle.get('heartbeat_s'), 0)} s), "
        "% of a core",
        "<= 10",
        idle.get("heartbeat_cpu_percent"),
        get(idle, "baseline", "cpu_percent"),
        ratio(idle.get("heartbeat_cpu_percent"), get(idle, "baseline", "cpu_percent")),
        lambda: idle["heartbeat_cpu_percent"] <= 10,
    )
    worst50, worst99 = rest.get("worst_route_p50"), rest.get("worst_route_p99")
    row(
        f"REST latency added over the upstream, p50 ms (worst route: `{worst50}`; baseline: "
        "that call made directly)",
        "<= 1",
        rest.get("rest_overhead_p50_ms"),
        get(rest, "latency", str(worst50), "direct_p50_ms"),
        "",
        lambda: rest["rest_overhead_p50_ms"] <= 1,
    )
    row(
        f"REST latency added over the upstream, p99 ms (worst route: `{worst99}`)",
        "<= 5",
        rest.get("rest_overhead_p99_ms"),
        get(rest, "latency", str(worst99), "direct_p99_ms"),
        "",
        lambda: rest["rest_overhead_p99_ms"] <= 5,
    )
    row(
        "Cached reads per second, one process (baseline: the emulator's own reads)",
        ">= 2,000",
        rest.get("cached_reads_per_s"),
        get(rest, "throughput", "emulator_direct", "reads_per_s"),
        ratio(
            rest.get("cached_reads_per_s"),
            get(rest, "throughput", "emulator_direct", "reads_per_s"),
        ),
        lambda: rest["cached_reads_per_s"] >= 2000,
    )
    bare = get(rest, "throughput", "bare_fastapi", "reads_per_s")
    row(
        "... the same, against a bare FastAPI route answering the same JSON from a dict",
        "(the limit; no target)",
        rest.get("cached_reads_per_s"),
        bare,
        ratio(rest.get("cached_reads_per_s"), bare),
        lambda: True,
    )
    ttl = fo.get("lease_ttl_s", 1.0)
    row(
        f"Poller takeover after SIGKILL, p95 s (lease {ttl:g} s; "
        f"{fmt(fo.get('failover_p95_lease_periods'))} lease periods)",
        f"<= {2 * ttl:g} (2 lease periods)",
        fo.get("failover_s"),
        None,
        "",
        lambda: fo["failover_s"] <= 2 * ttl,
    )
    row(
        "Messages lost / duplicated at viewers across the kills",
        "0 / 0",
        f"{fo.get('lost', DASH)} / {fo.get('duplicated', DASH)}",
        None,
        "",
        lambda: fo["lost"] == 0 and fo["duplicated"] == 0,
    )
    rows += topology_rows(res, lambda check: _met(check, quick))
    _soak_targets(res.get("soak", {}), row)
    return rows


# -- soak (bench/soak.py) ---------------------------------------------------------------------


def _soak_targets(soak: dict[str, Any], row: Callable[..., None]) -> None:
    if not soak:
        return
    minutes = soak["duration_s"] / 60
    growth = " / ".join(
        f"{soak[k]['growth'] * 100:+.1f} %" for k in ("rss_kib", "open_fds", "asyncio_tasks")
    )
    row(
        f"Soak, {minutes:g} min of churn on one process: RSS / open fds / asyncio tasks, "
        "growth from start to end",
        "<= 10 % each",
        growth,
        None,
        "",
        lambda: soak["flat"],
    )
    row(
        f"Soak: answers >= 500 (of {soak['answers']:,})",
        "0",
        soak["soak_server_errors"],
        None,
        "",
        lambda: soak["soak_server_errors"] == 0,
    )


def soak_details(res: dict[str, Any]) -> list[str]:
    soak = res.get("soak")
    if not soak:
        return []
    actors = soak["actors"]
    out = [
        "### Soak",
        "",
        f"{soak['duration_s'] / 60:g} min of churn on one process against the emulator: "
        f"{actors['customers']} customers (create, stream, send with and without "
        "Idempotency-Key, retry, read, complete or abandon), "
        f"{actors['droppers']} clients dropping streams (at once, after a moment, after "
        f"leaving them unread), {actors['long_pollers']} long-pollers (some abandoning), "
        f"{actors['vandals']} sending bad requests (garbage JSON, oversized bodies and "
        "headers, slow headers, bad handles and parameters, reused keys). Start: the median of "
        f"{soak['window_s']:g} s after a {soak['warmup_s']:g} s warm-up; end: the median of "
        f"the last {soak['window_s']:g} s. Stores that hold things for a while by design are "
        "shortened so that the run reaches its steady state: "
        + ", ".join(f"`{k}={v}`" for k, v in soak.get("shortened", {}).items())
        + ".",
        "",
        "| | Start | End | Growth | Max |",
        "|---|---|---|---|---|",
    ]
    for key, name in (
        ("rss_kib", "RSS, KiB"),
        ("open_fds", "Open file descriptors"),
        ("asyncio_tasks", "asyncio tasks"),
    ):
        x = soak[key]
        out.append(
            f"| {name} | {fmt(x['start'], 0)} | {fmt(x['end'], 0)} | "
            f"{x['growth'] * 100:+.1f} % | {x['max']} |"
        )
    statuses = ", ".join(f"{k}: {v:,}" for k, v in soak["by_status"].items())
    actions = ", ".join(f"{k} {v:,}" for k, v in soak["actions"].items())
    out += [
        "",
        f"Answers by status: {statuses}. Tracebacks in the log: {soak['tracebacks_in_log']}.",
        "",
        f"Actions: {actions}.",
        "",
    ]
    return out


def frontier_png(quick: bool) -> str:
    return f"{'quick' if quick else 'latest'}-frontier.png"


def markdown(res: dict[str, Any], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    quick = bool(meta.get("quick"))
    lines = [
        "# chat-bff benchmarks" + (" (smoke run: tiny sizes, figures not judged)" if quick else ""),
        "",
        f"{meta['date']}, commit `{meta['commit']}`; {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}; {meta['total_s']:.0f} s in all. "
        "Every figure is measured against its baseline in the same run, on the same machine, "
        "with servers and load generator as separate processes: compare ratios across "
        "machines, not absolute numbers.",
        "",
        *_targets(res, quick),
        "",
        "Delivery targets allow half an interval + 20 ms (p50) and one interval + 50 ms "
        "(p99). Reproduce with `make bench` (about 45 minutes on 2 cores, ten of them the "
        "soak); `make bench-quick` is a smoke run.",
        "",
        "## Details",
        "",
        *details(res, frontier_png(quick) if res.get("conversation", {}).get("frontier") else None),
        *soak_details(res),
        *hostile_details(res, quick),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    directory: Path, prefix: str, results: dict[str, Any], meta: dict[str, Any]
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    details_path = directory / f"{prefix}-details.json"
    if details_path.exists():  # a partial run (--only) keeps the other scenarios' figures
        previous = json.loads(details_path.read_text()).get("scenarios", {})
        results = {**previous, **results}
    headline = {}
    for scenario in results.values():
        for key in HEADLINE_KEYS:
            if key in scenario:
                headline[key] = scenario[key]
    ordered = {k: headline[k] for k in HEADLINE_KEYS if k in headline}
    paths = [directory / f"{prefix}.json", directory / f"{prefix}.md", details_path]
    paths[0].write_text(json.dumps(_clean(ordered), indent=2) + "\n")
    paths[1].write_text(markdown(results, meta))
    paths[2].write_text(json.dumps(_clean({"meta": meta, "scenarios": results}), indent=2) + "\n")
    conv = results.get("conversation")
    if conv:
        plot = write_frontier(conv, directory / frontier_png(bool(meta.get("quick"))))
        paths += [plot] if plot else []
    return paths


def main() -> None:
    """`python -m bench.report [latest|quick]`: render <prefix>.md again from the stored
    details (no measurement)."""
    import sys

    from bench.common import RESULTS

    prefix = sys.argv[1] if len(sys.argv) > 1 else "latest"
    stored = json.loads((RESULTS / f"{prefix}-details.json").read_text())
    (RESULTS / f"{prefix}.md").write_text(markdown(stored["scenarios"], stored["meta"]))
    if "conversation" in stored["scenarios"]:
        write_frontier(stored["scenarios"]["conversation"], RESULTS / f"{prefix}-frontier.png")


if __name__ == "__main__":
    main()
