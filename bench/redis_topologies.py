"""Redis topologies: chat-bff on a real Redis Cluster and Sentinel group (from the
`redis-server` binary, as the test suite runs them; failure detection tuned to 3 s).

- one_poller: a Cluster (3 masters, a replica each) and 3 instances; one chat watched by
  viewers on every instance while the agent talks, for 60 s. Upstream message reads counted
  by each instance (its `/metrics`) over the window, and by the upstream (the emulator) for
  the chat. Exactly one instance should have polled.
- failover: for a Sentinel group and a Cluster, each fresh: one chat, viewers on every
  instance, the agent talking every 0.3 s and the customer sending every 0.5 s (round robin
  over the instances) while the master of the chat's data is SIGKILLed. Promotion time (until
  the topology names a new answering master), the longest send, failed sends, and messages
  lost or duplicated at the viewers (stream reconnects counted; there should be none).
- sizing: N watched chats (one viewer each, spread over 3 instances, agents talking) on the
  Cluster and, as the baseline, on a single Redis in the same run: Redis commands processed
  per watched chat per second (all primaries, INFO stats) and memory per chat (MEMORY USAGE
  of every key of the fleet's prefix, divided by the chats).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from app.core.handles import chat_key
from bench.agents import Talker, create_many
from bench.common import (
    RedisServer,
    ServerProcess,
    log,
    r,
    run_loop,
    scenario_main,
    servers,
    start_bff,
    start_emulator,
)
from bench.wire import Viewer
from harness.topologies import ClusterGroup, SentinelGroup, Topology

READS = 'bff_upstream_requests_total{operation="GetMessages",outcome="ok"}'


@dataclass
class Sizes:
    one_poller_s: float
    sizing_chats: int
    sizing_s: float
    failover_sends: int


FULL = Sizes(one_poller_s=60, sizing_chats=60, sizing_s=30, failover_sends=20)
QUICK = Sizes(one_poller_s=8, sizing_chats=6, sizing_s=6, failover_sends=8)


def _metric(url: str, sample: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


class Fleet:
    """Three `chat-bff serve` on one Redis URL, each fleet under its own key prefix."""

    def __init__(self, redis_url: str, upstream: str, started: list[Any], size: int = 3) -> None:
        self.prefix = f"bench-{secrets.token_hex(4)}"
        self.instances: list[ServerProcess] = []
        for _ in range(size):
            server = start_bff(upstream, BFF_REDIS_URL=redis_url, BFF_REDIS_PREFIX=self.prefix)
            started.append(server)
            self.instances.append(server)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.instances]

    def reads(self) -> list[float]:
        return [_metric(s.url, READS) for s in self.instances]


def _viewers(urls: list[str], handle: str, per_instance: int) -> list[Viewer]:
    viewers = []
    for k in range(per_instance * len(urls)):
        viewer = Viewer(urls, handle, retry_s=0.2)
        viewer._turn = k  # start spread over the instances
        viewers.append(viewer.start())
    return viewers


async def _upstream_reads(emu_url: str, chat: str, since: float) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = (await http.get(f"{emu_url}/_bench/requests_for", params={"chat": chat})).json()
    return sum(1 for e in answer["requests"] if e["method"] == "GET" and e["at"] > since)


async def one_poller(
    sizes: Sizes, cluster: ClusterGroup, emu_url: str, started: list[Any]
) -> dict[str, Any]:
    fleet = Fleet(cluster.url, emu_url, started)
    ((handle, chat),) = await create_many(fleet.urls[:1], emu_url, ["one-poller"])
    viewers = _viewers(fleet.urls, handle, 2)
    talker = Talker(emu_url, [chat], mean_gap_s=2.0).start()
    await asyncio.sleep(3)  # the agent joined and greeted; the poller settled
    before = await asyncio.to_thread(fleet.reads)
    since = time.monotonic()
    await asyncio.sleep(sizes.one_poller_s)
    after = await asyncio.to_thread(fleet.reads)
    upstream = await _upstream_reads(emu_url, chat, since)
    await talker.stop()
    for viewer in viewers:
        await viewer.stop()
    per_instance = [int(b - a) for a, b in zip(before, after, strict=True)]
    return {
        "window_s": sizes.one_poller_s,
        "reads_per_instance": per_instance,
        "instances_polling": sum(1 for n in per_instance if n > 0),
        "upstream_reads_of_the_chat": upstream,
        "viewers": len(viewers),
        "viewer_reconnects": sum(v.connects - 1 for v in viewers),
        "messages": len(talker.said),
    }


async def _send(http: httpx.AsyncClient, url: str, handle: str, text: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        answer = await http.post(
            f"{url}/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": text}
        )
        status = answer.status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic() - started


async def failover(
    sizes: Sizes, topology: SentinelGroup | ClusterGroup, emu_url: str, started: list[Any]
) -> dict[str, Any]:
    fleet = Fleet(topology.url, emu_url, started)
    ((handle, chat),) = await create_many(fleet.urls[:1], emu_url, [f"failover-{topology.kind}"])
    viewers = _viewers(fleet.urls, handle, 2)
    talker = Talker(emu_url, [chat], mean_gap_s=0.3, uniform=True).start()
    await asyncio.sleep(2)
    victim = topology.owner_of(f"{fleet.prefix}:{{{chat_key(chat)}}}:lease")
    victim.kill()
    promoted = asyncio.create_task(asyncio.to_thread(topology.wait_failover, victim))
    sends = []
    async with httpx.AsyncClient(timeout=60) as http:
        for n in range(sizes.failover_sends):
            url = fleet.urls[n % len(fleet.urls)]
            sends.append(await _send(http, url, handle, f"during failover {n}"))
            await asyncio.sleep(0.5)
    promoted_s = await promoted
    await talker.stop()
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(timeout=10) as http:
        view = (await http.get(f"{emu_url}/_emulator/chats/{chat}")).json()
    expected = [int(m["index"]) for m in view["transcript"]]
    for _ in range(200):  # until every viewer caught up, at most 20 s
        if all(sorted(set(v.indices)) == expected for v in viewers):
            break
        await asyncio.sleep(0.1)
    for viewer in viewers:
        await viewer.stop()
    lost = sum(len(set(expected) - set(v.indices)) for v in viewers)
    duplicated = sum(sum(n - 1 for n in Counter(v.indices).values()) for v in viewers)
    return {
        "promoted_s": r(promoted_s, 2),
        "sends": len(sends),
        "failed_sends": sum(1 for status, _ in sends if status != 200),
        "longest_send_s": r(max(took for _, took in sends), 2),
        "lost": lost,
        "duplicated": duplicated,
        "messages": len(expected),
        "viewers": len(viewers),
        "viewer_reconnects": sum(v.connects - 1 for v in viewers),
    }


Client = Callable[[], redis.Redis]


def _commandstats(nodes: list[Client]) -> Counter[str]:
    """Commands processed so far, by command, summed over `nodes`."""
    total: Counter[str] = Counter()
    for node in nodes:
        with node() as client:
            for name, stats in client.info("commandstats").items():
                total[name.removeprefix("cmdstat_")] += int(stats["calls"])
    return total


async def _rate(nodes: list[Client], window_s: float) -> tuple[Counter[str], float]:
    before = await asyncio.to_thread(_commandstats, nodes)
    started = time.monotonic()
    await asyncio.sleep(window_s)
    after = await asyncio.to_thread(_commandstats, nodes)
    after.subtract(before)
    after["info"] -= 1  # our own reading of the stats
    return after, time.monotonic() - started


def _memory(nodes: list[Client], prefix: str) -> dict[str, int]:
    """Bytes (MEMORY USAGE) and count of every key under `prefix`, the chat logs apart."""
    out = Counter[str]()
    for node in nodes:
        with node() as client:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                size = int(client.memory_usage(key, samples=0) or 0)
                kind = "log" if key.endswith(":log") else "other"
                out[f"{kind}_bytes"] += size
                out[f"{kind}_keys"] += 1
    return dict(out)


async def sizing(
    sizes: Sizes, redis_url: str, nodes: list[Client], emu_url: str, started: list[Any]
) -> dict[str, Any]:
    """Commands per watched chat per second above the idle fleet's, and memory per chat."""
    fleet = Fleet(redis_url, emu_url, started)
    await asyncio.sleep(3)
    idle, idle_window = await _rate(nodes, sizes.sizing_s / 2)
    tag = secrets.token_hex(3)
    chats = await create_many(
        fleet.urls, emu_url, [f"size-{tag}-{k}" for k in range(sizes.sizing_chats)]
    )
    viewers = [
        Viewer([fleet.urls[k % 3]], handle, retry_s=0.5).start()
        for k, (handle, _) in enumerate(chats)
    ]
    talker = Talker(emu_url, [c for _, c in chats], mean_gap_s=3.0).start()
    await asyncio.sleep(5)  # agents joined, pollers and streams settled
    busy, window = await _rate(nodes, sizes.sizing_s)
    await talker.stop()
    memory = await asyncio.to_thread(_memory, nodes, fleet.prefix)
    for viewer in viewers:
        await viewer.stop()
    n = len(chats)
    per_chat = {
        name: r((busy[name] / window - idle[name] / idle_window) / n, 3)
        for name in busy
        if busy[name] / window - idle[name] / idle_window > 0.005 * n
    }
    messages = sum(len(v.indices) for v in viewers) / max(1, n)
    return {
        "chats": n,
        "window_s": r(window, 1),
        "idle_fleet_commands_per_s": r(sum(idle.values()) / idle_window, 1),
        "commands_per_s": r(sum(busy.values()) / window, 1),
        "commands_per_chat_per_s": r(
            (sum(busy.values()) / window - sum(idle.values()) / idle_window) / n, 2
        ),
        "per_chat_by_command": dict(sorted(per_chat.items(), key=lambda kv: -kv[1])),
        "bytes_per_chat": int((memory.get("log_bytes", 0) + memory.get("other_bytes", 0)) / n),
        "log_bytes_per_message": r(memory.get("log_bytes", 0) / max(1, n * messages), 1),
        "other_bytes_per_chat": int(memory.get("other_bytes", 0) / n),
        "keys_per_chat": r((memory.get("log_keys", 0) + memory.get("other_keys", 0)) / n, 2),
        "messages_per_chat": r(messages, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    topologies: list[Topology] = []

    async def scenario(started: list[Any], emu_url: str) -> dict[str, Any]:
        log("redis_topologies: starting a Redis Cluster")
        cluster = ClusterGroup()
        topologies.append(cluster)
        cluster.start()
        out: dict[str, Any] = {"one_poller": await one_poller(sizes, cluster, emu_url, started)}
        log(f"one poller: {out['one_poller']}")
        plain = RedisServer().start()
        started.append(plain)
        out["sizing"] = {
            "cluster": await sizing(
                sizes, cluster.url, [p.client for p in cluster.primaries()], emu_url, started
            ),
            "single_redis": await sizing(
                sizes,
                plain.url,
                [lambda: redis.Redis(port=plain.port, decode_responses=True)],
                emu_url,
                started,
            ),
        }
        log(f"sizing: {out['sizing']}")
        out["failover"] = {}
        for kind in (SentinelGroup, ClusterGroup):
            log(f"redis_topologies: a fresh {kind.kind} for the failover")
            topology = kind()
            topologies.append(topology)
            topology.start()
            out["failover"][topology.kind] = await failover(sizes, topology, emu_url, started)
            log(f"failover {topology.kind}: {out['failover'][topology.kind]}")
        return out

    try:
        with servers() as started:
            emu = start_emulator(join_delay=0.5, reply_delay=0.5)
            started.append(emu)
            result: dict[str, Any] = run_loop(scenario(started, emu.url))
            return result
    finally:
        for topology in topologies:
            topology.stop()


if __name__ == "__main__":
    scenario_main("redis_topologies", run)
