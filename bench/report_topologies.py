"""The `redis_topologies` scenario's rows in the targets table and its details section
(`bench/redis_topologies.py`): one poller on a Redis Cluster, Redis failovers, sizing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report_format import fmt, ratio


def topology_rows(res: dict[str, Any], met: Callable[[Callable[[], bool]], str]) -> list[str]:
    """Rows of `redis_topologies`: one poller on a Cluster, failovers without a lost message
    or a failed send."""
    topo = res.get("redis_topologies")
    if not topo:
        return []
    one = topo["one_poller"]
    reads = " / ".join(str(n) for n in one["reads_per_instance"])
    rows = [
        f"| Instances polling one watched chat on a Redis Cluster over "
        f"{fmt(one['window_s'], 0)} s (upstream reads per instance: {reads}) | 1 | "
        f"{one['instances_polling']} | | | {met(lambda: one['instances_polling'] == 1)} |"
    ]
    for kind, fo in topo["failover"].items():
        ok = fo["lost"] == 0 and fo["duplicated"] == 0 and fo["failed_sends"] == 0
        rows.append(
            f"| Redis master SIGKILL, {kind}: promotion s; lost / duplicated; failed sends of "
            f"{fo['sends']} (longest {fmt(fo['longest_send_s'])} s) | < 10; 0 / 0; 0 | "
            f"{fmt(fo['promoted_s'])}; {fo['lost']} / {fo['duplicated']}; "
            f"{fo['failed_sends']} | | | "
            f"{met(lambda fo=fo, ok=ok: ok and fo['promoted_s'] < 10)} |"
        )
    return rows


def topology_details(res: dict[str, Any]) -> list[str]:
    topo = res.get("redis_topologies")
    if not topo:
        return []
    one = topo["one_poller"]
    out = [
        "### Redis topologies",
        "",
        f"One chat on a Redis Cluster (3 masters, a replica each), {one['viewers']} viewers over "
        f"3 instances, {one['messages']} agent messages in {fmt(one['window_s'], 0)} s: "
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
            f"| {kind} | {fmt(fo['promoted_s'])} | {fo['sends']} | {fo['failed_sends']} | "
            f"{fmt(fo['longest_send_s'])} | {fo['messages']} | {fo['lost']} | "
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
            f"| {label} | {x['chats']} | {fmt(x['commands_per_chat_per_s'])} | "
            f"{fmt(x['idle_fleet_commands_per_s'], 1)} | {x['bytes_per_chat']:,} | "
            f"{fmt(x['log_bytes_per_message'], 1)} | {fmt(x['keys_per_chat'])} | "
            f"{fmt(x['messages_per_chat'], 1)} |"
        )
    breakdown = ", ".join(
        f"{name} {fmt(rate, 3)}"
        for name, rate in topo["sizing"]["cluster"]["per_chat_by_command"].items()
    )
    out += ["", f"Cluster, per watched chat per second, by command: {breakdown}."]
    c, p = topo["sizing"]["cluster"], topo["sizing"]["single_redis"]
    commands = ratio(c["commands_per_chat_per_s"], p["commands_per_chat_per_s"])
    memory = ratio(c["bytes_per_chat"], p["bytes_per_chat"])
    out += ["", f"Cluster / single Redis: commands {commands}, memory {memory}.", ""]
    return out
