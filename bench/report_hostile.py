"""The results' section "Memory under hostile load" (bench/hostile.py): a row per backend with
RSS (and Redis `used_memory`) against the stated ceilings, and the honest customers' answers."""

from __future__ import annotations

from typing import Any

from bench.report_format import DASH, fmt

OFFLINE_BYTES = 'bff_outbox_bytes{kind="offline"}'


def _verdict(ok: bool, quick: bool) -> str:
    if quick:
        return "(smoke)"
    return "met" if ok else "**missed**"


def _triple(x: dict[str, Any]) -> str:
    return f"{fmt(x['start'], 1)} / {fmt(x['max'], 1)} / {fmt(x['end'], 1)}"


def hostile_details(res: dict[str, Any], quick: bool) -> list[str]:
    run = res.get("hostile")
    if not run:
        return []
    first = run["backends"][0]
    caps = ", ".join(f"`{k}={v:,}`" for k, v in run["caps"].items())
    out = [
        "### Memory under hostile load",
        "",
        f"{run['duration_s']:g} s of attack per backend on one `chat-bff serve` process "
        "(`bench/hostile.py`): bodies near and over `BFF_MAX_BODY_BYTES` to routed and "
        "unrouted paths (sized and chunked), random Idempotency-Keys on sends and "
        "RequestChats, paths no route takes, the largest left messages to a webhook receiver "
        "that is down, chats created and never read; from "
        f"{first['attacker_addresses']['ipv4']} IPv4 addresses and "
        f"{first['attacker_addresses']['ipv6_of_one_64']:,} addresses of one IPv6 /64 "
        f"(through the trusted proxy), while {first['honest']['customers']} customers chat at "
        "human pace (every POST keyed, as the widget does; their stream open). Per-IP limits "
        f"as shipped; caps shrunk so that minutes reach them: {caps}. Ceiling: the start plus "
        "what the caps hold at about twice the per-item cost measured, plus the chats and "
        "addresses the run created and a fixed allowance (terms in the details JSON). Held: "
        "max within the ceiling (RSS, and Redis `used_memory`, the whole instance's at "
        "`BFF_BENCH_REDIS_URL`, by default 127.0.0.1:6379, the run's keys under a prefix of its "
        "own, deleted afterwards); answered: every honest request 2xx, every stream opened, "
        "every echo arrived.",
        "",
        "| Backend | RSS MiB start / max / end | RSS ceiling | Redis used_memory MiB "
        "start / max / end | Redis ceiling | Keys under the prefix (max) | Honest 2xx | "
        "Echo p50 / p99 ms | Held | Answered |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in run["backends"]:
        h, redis = row["honest"], row.get("redis")
        share = DASH if h["success"] is None else f"{h['success'] * 100:.1f} %"
        out.append(
            f"| {row['backend']} | {_triple(row['rss_mib'])} | {fmt(row['rss_mib']['ceiling'], 1)} "
            f"| {_triple(redis['used_memory_mib']) if redis else DASH} "
            f"| {fmt(redis['used_memory_mib']['ceiling'], 1) if redis else DASH} "
            f"| {fmt(redis['keys']['max']) if redis else DASH} "
            f"| {h['ok']:,} of {h['requests']:,} ({share}) "
            f"| {fmt(h['echo_p50_ms'], 0)} / {fmt(h['echo_p99_ms'], 0)} "
            f"| {_verdict(row['within'], quick)} | {_verdict(row['honest_ok'], quick)} |"
        )
    out.append("")
    for row in run["backends"]:
        statuses = ", ".join(f"{k}: {v:,}" for k, v in row["by_status"].items())
        store = row["store"]
        h = row["honest"]
        line = (
            f"{row['backend']}: answers to the attackers {statuses} ({row['server_errors']} "
            f"server errors, 507 being the full outbox's refusal; {row['tracebacks_in_log']} "
            f"tracebacks); {row['chats_created']:,} chats created; at the end "
            f"{fmt(store.get('bff_idempotency_entries'))} Idempotency-Key answers held and "
            f"{fmt(store.get(OFFLINE_BYTES))} bytes of left messages; "
            f"honest customers: {h['stream_failures']} stream failures, "
            f"{h['missing_echoes']} echoes missing"
        )
        if h["refused"]:
            line += f"; first refusal: `{h['refused'][0]}`"
        out += [line + ".", ""]
    return out
