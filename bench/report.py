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

DASH = "\u2013"  # en dash: not measured

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


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(a: Any, b: Any) -> str:
    try:
        value = a / b
    except (TypeError, ZeroDivisionError):
        return DASH
    return f"{value:.2f}x" if math.isfinite(value) else DASH


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


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
            f"| {what} | {target} | {_fmt(ours)} | {_fmt(base)} | {ratio} | {_met(ok, quick)} |"
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
        f"{_fmt(up.get('upstream_requests_ratio'))}x fewer",
        lambda: up["upstream_requests_ratio"] >= 10,
    )
    quiet = up.get("quiet_ratio_5_viewers_3_instances")
    if quiet is not None:
        rows.append(
            f"| ... same, quiet chat (nobody talks; idle cadence) | >= 10x fewer | | | "
            f"{_fmt(quiet)}x fewer | {_met(lambda: quiet >= 10, quick)} |"
        )
    n = de.get("chats", "N")
    # p50 <= half an interval + 20 ms, p99 <= one interval + 50 ms.
    for pct, limit in (("p50", 0.5 + 0.02 / interval), ("p99", 1 + 0.05 / interval)):
        ours = de.get(f"delivery_{pct}_over_interval")
        base = _get(de, "baseline", "agent", f"{pct}_over_interval")
        row(
            f"Delivery {pct} / poll interval ({interval:g} s), {n} watched chats",
            f"<= {limit:.2f}",
            ours,
            base,
            _ratio(ours, base),
            lambda ours=ours, limit=limit: ours <= limit,
        )
    row(
        "Customer's send echoed on their stream, p99 ms",
        "<= 150",
        de.get("echo_p99_ms"),
        _get(de, "baseline", "echo", "p99_ms"),
        _ratio(de.get("echo_p99_ms"), _get(de, "baseline", "echo", "p99_ms")),
        lambda: de["echo_p99_ms"] <= 150,
    )
    row(
        "Idle SSE streams held by one process",
        f">= {idle.get('target_streams', 10000):,}",
        idle.get("idle_streams"),
        _get(idle, "baseline", "streams"),
        _ratio(idle.get("idle_streams"), _get(idle, "baseline", "streams")),
        lambda: idle["idle_streams"] >= 10_000,
    )
    row(
        "Memory per idle stream, KiB",
        "<= 30",
        idle.get("kib_per_stream"),
        idle.get("baseline_kib_per_stream"),
        _ratio(idle.get("kib_per_stream"), idle.get("baseline_kib_per_stream")),
        lambda: idle["kib_per_stream"] <= 30,
    )
    row(
        f"CPU with all streams idle (heartbeat every {_fmt(idle.get('heartbeat_s'), 0)} s), "
        "% of a core",
        "<= 10",
        idle.get("heartbeat_cpu_percent"),
        _get(idle, "baseline", "cpu_percent"),
        _ratio(idle.get("heartbeat_cpu_percent"), _get(idle, "baseline", "cpu_percent")),
        lambda: idle["heartbeat_cpu_percent"] <= 10,
    )
    worst50, worst99 = rest.get("worst_route_p50"), rest.get("worst_route_p99")
    row(
        f"REST latency added over the upstream, p50 ms (worst route: `{worst50}`; baseline: "
        "that call made directly)",
        "<= 1",
        rest.get("rest_overhead_p50_ms"),
        _get(rest, "latency", str(worst50), "direct_p50_ms"),
        "",
        lambda: rest["rest_overhead_p50_ms"] <= 1,
    )
    row(
        f"REST latency added over the upstream, p99 ms (worst route: `{worst99}`)",
        "<= 5",
        rest.get("rest_overhead_p99_ms"),
        _get(rest, "latency", str(worst99), "direct_p99_ms"),
        "",
        lambda: rest["rest_overhead_p99_ms"] <= 5,
    )
    row(
        "Cached reads per second, one process (baseline: the emulator's own reads)",
        ">= 2,000",
        rest.get("cached_reads_per_s"),
        _get(rest, "throughput", "emulator_direct", "reads_per_s"),
        _ratio(
            rest.get("cached_reads_per_s"),
            _get(rest, "throughput", "emulator_direct", "reads_per_s"),
        ),
        lambda: rest["cached_reads_per_s"] >= 2000,
    )
    ttl = fo.get("lease_ttl_s", 1.0)
    row(
        f"Poller takeover after SIGKILL, p95 s (lease {ttl:g} s; "
        f"{_fmt(fo.get('failover_p95_lease_periods'))} lease periods)",
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
    rows += _topology_rows(res, quick)
    return rows


def _topology_rows(res: dict[str, Any], quick: bool) -> list[str]:
    """Rows of `redis_topologies`: one poller on a Cluster, failovers without a lost message
    or a failed send."""
    topo = res.get("redis_topologies")
    if not topo:
        return []
    one = topo["one_poller"]
    reads = " / ".join(str(n) for n in one["reads_per_instance"])
    rows = [
        f"| Instances polling one watched chat on a Redis Cluster over "
        f"{_fmt(one['window_s'], 0)} s (upstream reads per instance: {reads}) | 1 | "
        f"{one['instances_polling']} | | | {_met(lambda: one['instances_polling'] == 1, quick)} |"
    ]
    for kind, fo in topo["failover"].items():
        ok = fo["lost"] == 0 and fo["duplicated"] == 0 and fo["failed_sends"] == 0
        rows.append(
            f"| Redis master SIGKILL, {kind}: promotion s; lost / duplicated; failed sends of "
            f"{fo['sends']} (longest {_fmt(fo['longest_send_s'])} s) | < 10; 0 / 0; 0 | "
            f"{_fmt(fo['promoted_s'])}; {fo['lost']} / {fo['duplicated']}; "
            f"{fo['failed_sends']} | | | "
            f"{_met(lambda fo=fo, ok=ok: ok and fo['promoted_s'] < 10, quick)} |"
        )
    return rows


def _topology_details(res: dict[str, Any]) -> list[str]:
    topo = res.get("redis_topologies")
    if not topo:
        return []
    one = topo["one_poller"]
    out = [
        "### Redis topologies",
        "",
        f"One chat on a Redis Cluster (3 masters, a replica each), {one['viewers']} viewers over "
        f"3 instances, {one['messages']} agent messages in {_fmt(one['window_s'], 0)} s: "
        f"upstream message reads per instance {one['reads_per_instance']}; the upstream saw "
        f"{one['upstream_reads_of_the_chat']} reads of the chat; "
        f"{one['viewer_reconnects']} stream reconnects.",
        "",
        "| Redis master SIGKILL | Promoted after s | Sends | Failed | Longest send s | "
        "Messages | Lost | Duplicated | Stream reconnects |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, fo in topo["failover"].items():
        out.append(
            f"| {kind} | {_fmt(fo['promoted_s'])} | {fo['sends']} | {fo['failed_sends']} | "
            f"{_fmt(fo['longest_send_s'])} | {fo['messages']} | {fo['lost']} | "
            f"{fo['duplicated']} | {fo['viewer_reconnects']} |"
        )
    out += [
        "",
        "Sizing: watched chats (one viewer each, spread over 3 instances, agents talking) on "
        "the Cluster and, as the baseline, on a single Redis. Commands per chat are those above "
        "the same fleet's idle rate (renewals, sweeps, keepalives: the idle column).",
        "",
        "| Redis | Chats | Commands per chat per s | Idle fleet commands/s | Bytes per chat | "
        "Log bytes per message | Keys per chat | Messages per chat |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, key in (("Cluster (all primaries)", "cluster"), ("single Redis", "single_redis")):
        x = topo["sizing"][key]
        out.append(
            f"| {label} | {x['chats']} | {_fmt(x['commands_per_chat_per_s'])} | "
            f"{_fmt(x['idle_fleet_commands_per_s'], 1)} | {x['bytes_per_chat']:,} | "
            f"{_fmt(x['log_bytes_per_message'], 1)} | {_fmt(x['keys_per_chat'])} | "
            f"{_fmt(x['messages_per_chat'], 1)} |"
        )
    breakdown = ", ".join(
        f"{name} {_fmt(rate, 3)}"
        for name, rate in topo["sizing"]["cluster"]["per_chat_by_command"].items()
    )
    out += ["", f"Cluster, per watched chat per second, by command: {breakdown}."]
    c, p = topo["sizing"]["cluster"], topo["sizing"]["single_redis"]
    commands = _ratio(c["commands_per_chat_per_s"], p["commands_per_chat_per_s"])
    memory = _ratio(c["bytes_per_chat"], p["bytes_per_chat"])
    out += ["", f"Cluster / single Redis: commands {commands}, memory {memory}.", ""]
    return out


def _details(res: dict[str, Any]) -> list[str]:
    out: list[str] = []
    up = res.get("upstream_load")
    if up:
        out += [
            "### Upstream load",
            "",
            f"Requests per chat per second counted by the upstream over the window; chat-bff "
            f"polls every {up['poll_interval_s']:g} s while lively; the baseline viewers poll "
            f"state + messages every {up['baseline_interval_s']:g} s. Lively: the agent posts "
            f"at random moments (mean gap {up['lively_mean_gap_s']:g} s).",
            "",
            "| Workload | Arm | Viewers | Requests/chat/s | Per poll interval | Baseline / ours |",
            "|---|---|---|---|---|---|",
        ]
        for x in up["rows"]:
            out.append(
                f"| {x['workload']} | {x['arm']} | {x['viewers']} | "
                f"{_fmt(x['requests_per_chat_per_s'], 3)} | "
                f"{_fmt(x['requests_per_poll_interval'], 2)} | {_fmt(x['baseline_over_ours'])} |"
            )
        out.append("")
    de = res.get("delivery")
    if de:
        out += [
            "### Delivery latency",
            "",
            "Watched chats on one process (each with its customer's SSE stream), some with the "
            "customer sending; latency from the upstream's commit (`utcTime`) to the browser "
            "event. Baseline: the same number of chats polled directly at chat-bff's measured "
            f"request budget. Whatever had not arrived {_fmt(de.get('grace_s'), 0)} s after the "
            "window counts as arriving then (so under overload the figures are lower bounds).",
            "",
            "| Chats | | p50 ms | p99 ms | max ms | samples | not arrived | upstream req/s | "
            "CPU % |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        notes = []
        for point in de.get("points", [de]):
            for arm in ("ours", "baseline"):
                d = point[arm]
                cpu = d.get("bff_cpu_percent", d.get("emulator_cpu_percent"))
                for kind in ("agent", "echo"):
                    x = d[kind]
                    who = "chat-bff" if arm == "ours" else "direct polling"
                    label = f"{who}, {'agent message' if kind == 'agent' else 'own send'}"
                    out.append(
                        f"| {point['chats']:,} | {label} | {_fmt(x['p50_ms'], 1)} | "
                        f"{_fmt(x['p99_ms'], 1)} | {_fmt(x['max_ms'], 1)} | {x['samples']} | "
                        f"{x.get('undelivered', DASH)} | "
                        f"{_fmt(d['upstream_requests_per_s'], 1)} | {_fmt(cpu, 1)} |"
                    )
            o = point["ours"]
            notes += [
                f"{point['chats']:,} chats: chat-bff CPU {_fmt(o['bff_cpu_percent'], 1)}% "
                f"(emulator {_fmt(o['emulator_cpu_percent'], 1)}%), stream failures "
                f"{o['stream_failures']}, failed sends {o['send_errors']} of {o['sends']}; "
                f"the baseline polled every {_fmt(point['baseline']['poll_every_s'])} s.",
                "",
            ]
        out += [
            "",
            *notes,
            "CPU % is chat-bff's process for chat-bff, the emulator's for the baseline.",
            "",
        ]
    idle = res.get("idle_streams")
    if idle:
        out += [
            "### Idle streams",
            "",
            "| | Streams | Failed | KiB/stream | CPU % idle | Heartbeats in window | "
            "Connect p50 ms | Connect p99 ms | Connects/s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, key in (
            ("chat-bff", "ours"),
            ("bare sse-starlette (baseline)", "baseline"),
            ("plain ASGI, shared heartbeat (reference)", "reference_pure_asgi"),
        ):
            d = idle.get(key)
            if d:
                out.append(
                    f"| {label} | {d['streams']:,} | {d['failed']} | "
                    f"{_fmt(d['kib_per_stream'], 1)} | {_fmt(d['cpu_percent'], 1)} | "
                    f"{d['heartbeats_received']:,} | {_fmt(d['connect_p50_ms'], 1)} | "
                    f"{_fmt(d['connect_p99_ms'], 1)} | {_fmt(d['connects_per_s'], 0)} |"
                )
        out.append("")
    rest = res.get("rest_overhead")
    if rest:
        out += [
            "### REST overhead",
            "",
            "| Route | chat-bff p50 | p99 | upstream direct p50 | p99 | added p50 | "
            "added p99 (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        for route, x in rest["latency"].items():
            out.append(
                f"| `{route}` | {_fmt(x['ours_p50_ms'], 3)} | {_fmt(x['ours_p99_ms'], 3)} | "
                f"{_fmt(x['direct_p50_ms'], 3)} | {_fmt(x['direct_p99_ms'], 3)} | "
                f"{_fmt(x['added_p50_ms'], 3)} | {_fmt(x['added_p99_ms'], 3)} |"
            )
        t = rest["throughput"]
        out += [
            "",
            f"Cached reads, {rest['connections']} keep-alive connections: chat-bff "
            f"{_fmt(t['chat-bff']['reads_per_s'], 0)}/s at "
            f"{_fmt(t['chat-bff']['server_cpu_percent'], 0)}% CPU (load generator "
            f"{_fmt(t['chat-bff']['client_cpu_percent'], 0)}%); emulator directly "
            f"{_fmt(t['emulator_direct']['reads_per_s'], 0)}/s.",
            "",
        ]
    fo = res.get("failover")
    if fo:
        takeovers = ", ".join(_fmt(x, 2) for x in fo["takeovers_s"])
        out += [
            "### Failover",
            "",
            f"{fo['trials']} SIGKILLs of the lease holder (lease {fo['lease_ttl_s']:g} s): "
            f"takeover p50 {_fmt(fo['failover_p50_s'])} s, p95 {_fmt(fo['failover_s'])} s, "
            f"max {_fmt(fo['failover_max_s'])} s ({takeovers}). {fo['messages']} messages to "
            f"{fo['viewers']} viewers ({fo['viewer_reconnects']} reconnects): "
            f"{fo['lost']} lost, {fo['duplicated']} duplicated.",
            "",
        ]
    out += _topology_details(res)
    return out


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
        "(p99). Reproduce with `make bench` (under 10 minutes on 2 cores); `make bench-quick` is a "
        "smoke run.",
        "",
        "## Details",
        "",
        *_details(res),
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
    return paths


def main() -> None:
    """`python -m bench.report [latest|quick]`: render <prefix>.md again from the stored
    details (no measurement)."""
    import sys

    from bench.common import RESULTS

    prefix = sys.argv[1] if len(sys.argv) > 1 else "latest"
    stored = json.loads((RESULTS / f"{prefix}-details.json").read_text())
    (RESULTS / f"{prefix}.md").write_text(markdown(stored["scenarios"], stored["meta"]))


if __name__ == "__main__":
    main()
