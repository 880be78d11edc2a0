"""Poller failover: SIGKILL the instance holding a chat's lease, measure the time to the next
upstream poll of that chat by another instance, and count what the browsers lost or got twice.

A fleet of 3 instances on a private Redis, BFF_LEASE_TTL_S short to keep trials bounded. The
agent keeps talking across every kill (a message every 0.15-0.45 s). Browsers (SSE viewers
spread over the instances) reconnect with Last-Event-ID to a live instance, as behind a load
balancer that dropped the dead one. After each kill a fresh instance joins, so every trial
starts from 3.

- holder: the instance whose `/metrics` gauge `bff_pollers` is 1;
- takeover: the first upstream GET of the chat arriving after the kill (the emulator's request
  log `at` is time.monotonic(), comparable across processes on Linux; requests within 10 ms of
  the kill are ignored, in case the dead holder had one in flight) minus the kill time;
- lost / duplicated: after the agent stops and every viewer caught up, the transcript indices
  missing from a viewer, and indices a viewer received more than once, summed over viewers.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.agents import Talker, create_many
from bench.common import (
    RedisServer,
    ServerProcess,
    log,
    percentile,
    r,
    run_loop,
    scenario_main,
    servers,
    start_bff,
    start_emulator,
)
from bench.wire import Connection, Viewer

LEASE_TTL_S = 1.0
IN_FLIGHT_GUARD_S = 0.010


@dataclass
class Sizes:
    trials: int
    viewers: int


FULL = Sizes(trials=20, viewers=6)
QUICK = Sizes(trials=2, viewers=3)


def _pollers(url: str) -> int:
    try:
        text = httpx.get(url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    match = re.search(r"^bff_pollers (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


class Fleet:
    def __init__(self, redis: RedisServer, upstream: str, started: list[Any]) -> None:
        self.redis = redis
        self.upstream = upstream
        self.started = started
        self.instances: list[ServerProcess] = []
        self.urls: list[str] = []  # what the load balancer routes to

    def add(self) -> ServerProcess:
        server = start_bff(
            self.upstream, BFF_REDIS_URL=self.redis.url, BFF_LEASE_TTL_S=str(LEASE_TTL_S)
        )
        self.started.append(server)
        self.instances.append(server)
        self.urls.append(server.url)
        return server

    async def holder(self, timeout_s: float = 15.0) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = await asyncio.gather(
                *(asyncio.to_thread(_pollers, s.url) for s in self.instances)
            )
            holders = [s for s, n in zip(self.instances, counts, strict=True) if n > 0]
            if len(holders) == 1:
                return holders[0]
            await asyncio.sleep(0.1)
        raise RuntimeError("no single lease holder")

    def kill(self, server: ServerProcess) -> float:
        self.urls.remove(server.url)
        self.instances.remove(server)
        assert server.proc is not None
        at = time.monotonic()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        return at


async def _next_poll(emulator: Connection, chat: str, since: int, after: float) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = await emulator.json("GET", f"/_bench/requests_for?chat={chat}&since={since}")
        for entry in answer["requests"]:
            if entry["method"] == "GET" and entry["at"] > after + IN_FLIGHT_GUARD_S:
                return float(entry["at"]) - after
        await asyncio.sleep(0.05)
    raise RuntimeError("no takeover within 30 s")


async def _scenario(sizes: Sizes, fleet: Fleet, emu_url: str) -> dict[str, Any]:
    ((handle, chat),) = await create_many(fleet.urls[:1], emu_url, ["failover"])
    viewers = []
    for k in range(sizes.viewers):
        viewer = Viewer(fleet.urls, handle, retry_s=0.2)
        viewer._turn = k  # start spread over the instances
        viewers.append(viewer.start())
    talker = Talker(emu_url, [chat], mean_gap_s=0.3, uniform=True).start()
    emulator = Connection(emu_url)
    takeovers: list[float] = []
    for trial in range(sizes.trials):
        holder = await fleet.holder()
        since = (await emulator.json("GET", f"/_bench/requests_for?chat={chat}&since=0"))[
            "last_seq"
        ]
        killed_at = fleet.kill(holder)
        joining = asyncio.create_task(asyncio.to_thread(fleet.add))
        takeover = await _next_poll(emulator, chat, since, killed_at)
        takeovers.append(takeover)
        log(f"failover trial {trial + 1}: takeover {takeover:.3f} s")
        await joining
        await asyncio.sleep(0.5)
    await talker.stop()
    last = max(s.index for s in talker.said)
    deadline = time.monotonic() + 15
    behind = [v for v in viewers if (max(v.indices) if v.indices else 0) < last]
    while behind and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        behind = [v for v in behind if (max(v.indices) if v.indices else 0) < last]
    for viewer in viewers:
        await viewer.stop()
    expected = set(range(1, last + 1))
    lost = sum(len(expected - set(v.indices)) for v in viewers)
    duplicated = sum(len(v.indices) - len(set(v.indices)) for v in viewers)
    return {
        "failover_s": r(percentile(takeovers, 95)),
        "lost": lost,
        "duplicated": duplicated,
        "lease_ttl_s": LEASE_TTL_S,
        "failover_p95_lease_periods": r(percentile(takeovers, 95) / LEASE_TTL_S, 2),
        "failover_p50_s": r(percentile(takeovers, 50)),
        "failover_max_s": r(max(takeovers)),
        "trials": len(takeovers),
        "takeovers_s": [r(t) for t in takeovers],
        "messages": last,
        "viewers": sizes.viewers,
        "viewer_reconnects": sum(v.connects - 1 for v in viewers),
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with servers() as started:
        emu = start_emulator(join_delay=0.5)
        started.append(emu)
        redis = RedisServer().start()
        started.append(redis)
        fleet = Fleet(redis, emu.url, started)
        for _ in range(3):
            fleet.add()
        return run_loop(_scenario(sizes, fleet, emu.url))


if __name__ == "__main__":
    scenario_main("failover", run)
