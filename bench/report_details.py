"""The details section of the results: one block per scenario, everything it measured."""

from __future__ import annotations

from typing import Any

from bench.report_conversation import conversation_details
from bench.report_format import DASH, fmt, get
from bench.report_topologies import topology_details


def details(res: dict[str, Any], frontier_png: str | None = None) -> list[str]:
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
                f"{fmt(x['requests_per_chat_per_s'], 3)} | "
                f"{fmt(x['requests_per_poll_interval'], 2)} | {fmt(x['baseline_over_ours'])} |"
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
            f"request budget. Whatever had not arrived {fmt(de.get('grace_s'), 0)} s after the "
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
                        f"| {point['chats']:,} | {label} | {fmt(x['p50_ms'], 1)} | "
                        f"{fmt(x['p99_ms'], 1)} | {fmt(x['max_ms'], 1)} | {x['samples']} | "
                        f"{x.get('undelivered', DASH)} | "
                        f"{fmt(d['upstream_requests_per_s'], 1)} | {fmt(cpu, 1)} |"
                    )
            o = point["ours"]
            notes += [
                f"{point['chats']:,} chats: chat-bff CPU {fmt(o['bff_cpu_percent'], 1)}% "
                f"(emulator {fmt(o['emulator_cpu_percent'], 1)}%), stream failures "
                f"{o['stream_failures']}, failed sends {o['send_errors']} of {o['sends']}; "
                f"the baseline polled every {fmt(point['baseline']['poll_every_s'])} s.",
                "",
            ]
        out += [
            "",
            *notes,
            "CPU % is chat-bff's process for chat-bff, the emulator's for the baseline.",
            "",
        ]
    conv = res.get("conversation")
    if conv:
        out += conversation_details(conv, frontier_png)
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
                    f"{fmt(d['kib_per_stream'], 1)} | {fmt(d['cpu_percent'], 1)} | "
                    f"{d['heartbeats_received']:,} | {fmt(d['connect_p50_ms'], 1)} | "
                    f"{fmt(d['connect_p99_ms'], 1)} | {fmt(d['connects_per_s'], 0)} |"
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
                f"| `{route}` | {fmt(x['ours_p50_ms'], 3)} | {fmt(x['ours_p99_ms'], 3)} | "
                f"{fmt(x['direct_p50_ms'], 3)} | {fmt(x['direct_p99_ms'], 3)} | "
                f"{fmt(x['added_p50_ms'], 3)} | {fmt(x['added_p99_ms'], 3)} |"
            )
        for route, x in rest["latency"].items():
            if "bare_p50_ms" in x:
                out.append(
                    f"| `{route}` on a bare FastAPI route (same answer from a dict) | "
                    f"{fmt(x['bare_p50_ms'], 3)} | {fmt(x['bare_p99_ms'], 3)} | | | "
                    f"chat-bff / bare: {fmt(x['ours_over_bare_p50'])}x | "
                    f"{fmt(x['ours_over_bare_p99'])}x |"
                )
        t = rest["throughput"]
        out += [
            "",
            f"Cached reads, {rest['connections']} keep-alive connections: chat-bff "
            f"{fmt(t['chat-bff']['reads_per_s'], 0)}/s at "
            f"{fmt(t['chat-bff']['server_cpu_percent'], 0)}% CPU (load generator "
            f"{fmt(t['chat-bff']['client_cpu_percent'], 0)}%); emulator directly "
            f"{fmt(t['emulator_direct']['reads_per_s'], 0)}/s; a bare FastAPI route "
            f"{fmt(get(t, 'bare_fastapi', 'reads_per_s'), 0)}/s.",
            "",
        ]
    fo = res.get("failover")
    if fo:
        takeovers = ", ".join(fmt(x, 2) for x in fo["takeovers_s"])
        out += [
            "### Failover",
            "",
            f"{fo['trials']} SIGKILLs of the lease holder (lease {fo['lease_ttl_s']:g} s): "
            f"takeover p50 {fmt(fo['failover_p50_s'])} s, p95 {fmt(fo['failover_s'])} s, "
            f"max {fmt(fo['failover_max_s'])} s ({takeovers}). {fo['messages']} messages to "
            f"{fo['viewers']} viewers ({fo['viewer_reconnects']} reconnects): "
            f"{fo['lost']} lost, {fo['duplicated']} duplicated.",
            "",
        ]
    out += topology_details(res)
    return out
