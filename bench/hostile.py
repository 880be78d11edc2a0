"""Memory budget under hostile load (issue 18): one `chat-bff serve` process, first on the
memory bus, then on Redis, under every attack the issue 18 review found (bench/hostile_load.py)
while a few honest customers chat at human pace, for a few minutes each.

Measured: the process's RSS (start: before the attack, after a warm-up with the customers
chatting; steady: the median of the attack's last quarter; max; end: the median of its last
5 s), its open fds and asyncio tasks (sampled as the soak samples them), every answer by
status, and the honest customers' answers and echo latency (send -> their own stream). On
Redis also `used_memory` and the number of keys under the run's private prefix (deleted
afterwards).

The ceilings are stated, not fitted: what the process (or Redis) may hold is what its caps
bound (docs/SECURITY.md), each at a per-item cost measured once and given here with its
margin, plus a fixed allowance for the allocator and the requests in flight. The caps that
take an hour or a flood of clients to fill are shrunk (CAPS) so that a few minutes reach
them: the run shows the process at its caps (the same terms at the shipped caps give what a
production process may hold for them).
The per-IP limits are the shipped ones: the attackers' many addresses are what gets past them.
Chats have no cap of their own: they are bounded by the per-IP create rate, so the ceiling
counts the chats the run created.

Pass: the max within the ceiling (RSS, and on Redis `used_memory`); every honest request
answered 2xx, every honest stream opened, every echo arrived.

`python -m bench.hostile [--quick] [--out FILE]`; Redis: `BFF_BENCH_REDIS_URL` (default
redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.common import (
    LOAD_LIMITS,
    Background,
    log,
    percentile,
    r,
    rss_kib,
    run_loop,
    scenario_main,
    server_pid,
    servers,
    shipped_default,
    start_bff,
    start_emulator,
)
from bench.hostile_load import HostileLoad, Pace
from bench.soak import asyncio_tasks, open_fds
from harness.servers import free_port

KIB, MIB = 1024, 1 << 20
# Shrunk so that minutes reach them (shipped: 2,000 / 100,000 / 64 MiB). The attackers' eight
# IPv4 addresses and one /64 (keyed as one client once IPv6 is keyed by prefix) hold at most
# 9 x 200 entries: the total leaves room for the honest customers' keys.
CAPS = {
    "BFF_IDEMPOTENCY_MAX_PER_CLIENT": 200,
    "BFF_IDEMPOTENCY_MAX_ENTRIES": 3_000,
    "BFF_OFFLINE_OUTBOX_MAX_BYTES": 4 * MIB,
}


@dataclass(frozen=True)
class Costs:
    """What one held item may cost at most, bytes (measured, with the margin noted)."""

    idempotency_entry: int  # an answer kept, with its claim, heap and per-client entries
    outbox_factor: float  # held memory per byte the outbox quota counts
    chat: int  # a chat created: its cache, record, lease, interest and poller
    client: int  # an address seen: its rate-limit buckets
    fixed: int  # allocator, connections and bodies in flight, pools warming up: whatever
    # the items do not explain (14 to 25 MiB of the process's growth in full runs; none of Redis's)


# Each cost is about twice what one batch of items added once settled (measured with 3,000
# keyed sends, 400 chats, 300 left messages of 30 KB, 3,000 addresses; 2 cores, Python 3.11):
# memory bus, RSS: 0.7 KiB an answer kept (with the message it sent in the transcript),
# 16-19 KiB a chat, 0.85 byte per byte the offline quota counts, 1.1 KiB an address.
PROCESS = Costs(
    idempotency_entry=2 * KIB, outbox_factor=2.0, chat=48 * KIB, client=2 * KIB, fixed=48 * MIB
)
# Redis bus, RSS: the stores are in Redis; pollers stay here (17-27 KiB a chat), and the
# process grew 0.9 KiB per address.
PROCESS_ON_REDIS = Costs(
    idempotency_entry=0, outbox_factor=0.0, chat=48 * KIB, client=2 * KIB, fixed=48 * MIB
)
# Redis bus, `used_memory`: 1.0 KiB an answer kept (with the message's log entry), 2.6-8.5 KiB
# a chat, 1.23 bytes per byte counted, 0.4 KiB an address (its rate-limit buckets).
REDIS = Costs(
    idempotency_entry=2 * KIB, outbox_factor=1.5, chat=24 * KIB, client=1 * KIB, fixed=16 * MIB
)


def ceiling(costs: Costs, caps: dict[str, int], chats: int, clients: int) -> dict[str, float]:
    """The budget above the start, in MiB, term by term (`total` is their sum)."""
    terms = {
        "idempotency": caps["BFF_IDEMPOTENCY_MAX_ENTRIES"] * costs.idempotency_entry,
        "offline_outbox": caps["BFF_OFFLINE_OUTBOX_MAX_BYTES"] * costs.outbox_factor,
        "chats": chats * costs.chat,
        "clients": clients * costs.client,
        "fixed": costs.fixed,
    }
    out = {k: round(v / MIB, 1) for k, v in terms.items()}
    out["total"] = round(sum(terms.values()) / MIB, 1)
    return out


@dataclass
class Sizes:
    duration_s: float
    warmup_s: float
    pace: Pace = field(default_factory=Pace)


FULL = Sizes(duration_s=240, warmup_s=15, pace=Pace(keyed=3, pause_s=(0.02, 0.15)))
QUICK = Sizes(
    duration_s=12,
    warmup_s=4,
    pace=Pace(big_bodies=1, keyed=1, unrouted=1, offline=1, honest=2, honest_gap_s=2.0),
)


@dataclass
class Sampler(Background):
    """The process every second (RSS, fds, asyncio tasks); Redis every few seconds."""

    pid: int
    url: str
    redis: Redis | None = None
    prefix: str = ""
    started: float = field(default_factory=time.monotonic)
    process: list[tuple[float, int, int, int]] = field(default_factory=list)
    store: list[tuple[float, int, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(1)

    async def sample(self) -> None:
        at = time.monotonic() - self.started
        tasks = await asyncio.to_thread(asyncio_tasks, self.url)
        self.process.append((at, rss_kib(self.pid), open_fds(self.pid), tasks))
        if self.redis is not None and (not self.store or at - self.store[-1][0] >= 4.5):
            memory = await self.redis.info("memory")
            keys = 0
            async for _ in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
                keys += 1
            self.store.append((at, int(memory["used_memory"]), keys))


def _series(rows: list[tuple[Any, ...]], i: int, start_at: float, end_at: float) -> dict[str, Any]:
    """start (median of the 3 samples before the attack), steady (median of the attack's
    last quarter), max (during the attack), end (median of its last 5 s)."""
    before = [row[i] for row in rows if row[0] < start_at][-3:]
    during = [row for row in rows if start_at <= row[0] <= end_at]
    steady = [row[i] for row in during if row[0] >= end_at - (end_at - start_at) / 4]
    end = [row[i] for row in during if row[0] >= end_at - 5] or [during[-1][i]]
    return {
        "start": statistics.median(before or [during[0][i]]),
        "steady": statistics.median(steady or end),
        "max": max(row[i] for row in during),
        "end": statistics.median(end),
    }


def _mib(series: dict[str, Any], unit: int) -> dict[str, float]:
    return {k: round(v * unit / MIB, 1) for k, v in series.items()}


def _metrics(url: str) -> dict[str, float]:
    """The stores' own counts at the end, as /metrics gives them."""
    text = httpx.get(url + "/metrics", timeout=5).text
    names = (
        "idempotency_entries|idempotency_refused_total|outbox_items|outbox_bytes|"
        "outbox_refused_total|outbox_dead_letters_total|pollers|sse_streams"
    )
    series = re.finditer(rf"^(bff_(?:{names})(?:\{{[^}}]*\}})?) (\S+)$", text, re.M)
    return {m.group(1): float(m.group(2)) for m in series}


async def _attack(url: str, pid: int, sizes: Sizes, redis_url: str | None, prefix: str) -> Any:
    load = HostileLoad(url, sizes.pace, int(shipped_default("max_body_bytes")))
    redis = None if redis_url is None else Redis.from_url(redis_url)
    sampler = Sampler(pid, url, redis, prefix)
    sampler.start()
    begin = time.monotonic()
    load.stop_at = begin + sizes.warmup_s + sizes.duration_s
    customers = [load.keep_going(partial(load.customer, n)) for n in range(sizes.pace.honest)]
    honest = asyncio.gather(*customers)
    await asyncio.sleep(sizes.warmup_s)
    attack_at = time.monotonic() - sampler.started
    load.attacking = True
    log(f"hostile: attack for {sizes.duration_s:.0f} s")
    attackers = asyncio.gather(*(load.keep_going(actor) for actor in load.attackers()))
    while time.monotonic() < load.stop_at:
        await asyncio.sleep(min(30, max(0.1, load.stop_at - time.monotonic())))
        last = sampler.process[-1]
        log(f"hostile {last[0]:.0f} s: rss {last[1] / 1024:.1f} MiB, tasks {last[3]}")
    end_at = time.monotonic() - sampler.started
    load.attacking = False
    await asyncio.wait_for(asyncio.gather(attackers, honest), 60)
    await sampler.stop()
    if redis is not None:
        await redis.aclose()
    return load, sampler, attack_at, end_at


def _measure(
    backend: str, url: str, pid: int, sizes: Sizes, redis_url: str | None, prefix: str
) -> dict[str, Any]:
    load, sampler, attack_at, end_at = run_loop(_attack(url, pid, sizes, redis_url, prefix))
    honest = load.honest
    echoes, missing = honest.echoes()
    chats = honest.chats + load.hostile.actions["chats created, never read"]
    clients = len(load.addresses) + sizes.pace.honest
    rss = _mib(_series(sampler.process, 1, attack_at, end_at), KIB)
    costs = PROCESS if backend == "memory" else PROCESS_ON_REDIS
    budget = ceiling(costs, CAPS, chats, clients)
    rss["ceiling"] = round(rss["start"] + budget["total"], 1)
    statuses = load.hostile.statuses
    requests = sum(honest.tally.statuses.values())
    ok = sum(n for s, n in honest.tally.statuses.items() if 200 <= s < 300)
    out: dict[str, Any] = {
        "backend": backend,
        "rss_mib": rss,
        "rss_budget_mib": budget,
        "rss_within": rss["max"] <= rss["ceiling"],
        "open_fds": _series(sampler.process, 2, attack_at, end_at),
        "asyncio_tasks": _series(sampler.process, 3, attack_at, end_at),
        "by_status": {str(k): v for k, v in sorted(statuses.items())},
        # 507 is the outbox's designed refusal (its quota full), not a failure.
        "server_errors": sum(n for s, n in statuses.items() if s >= 500 and s != 507),
        "actions": dict(sorted(load.hostile.actions.items())),
        "attacker_addresses": {
            "ipv4": sum(1 for a in load.addresses if "." in a),
            "ipv6_of_one_64": sum(1 for a in load.addresses if ":" in a),
        },
        "chats_created": chats,
        "honest": {
            "customers": sizes.pace.honest,
            "chats": honest.chats,
            "requests": requests,
            "ok": ok,
            "success": r(ok / requests, 4) if requests else None,
            "refused": honest.refused[:10],
            "stream_connects": honest.stream_connects,
            "stream_failures": honest.stream_failures,
            "echoes": len(echoes),
            "missing_echoes": missing,
            "echo_p50_ms": r(percentile(echoes, 50) * 1000, 1),
            "echo_p99_ms": r(percentile(echoes, 99) * 1000, 1),
        },
        "store": _metrics(url),
        "samples": [[round(a, 1), b, c, d] for a, b, c, d in sampler.process[::5]],
    }
    h = out["honest"]
    out["honest_ok"] = bool(requests) and ok == requests and not missing
    out["honest_ok"] = out["honest_ok"] and h["stream_failures"] == 0
    if redis_url is not None:
        used = _mib(_series(sampler.store, 1, attack_at, end_at), 1)
        store_budget = ceiling(REDIS, CAPS, chats, clients)
        used["ceiling"] = round(used["start"] + store_budget["total"], 1)
        out["redis"] = {
            "used_memory_mib": used,
            "budget_mib": store_budget,
            "within": used["max"] <= used["ceiling"],
            "keys": _series(sampler.store, 2, attack_at, end_at),
            "samples": [[round(a, 1), b, c] for a, b, c in sampler.store],
        }
    out["within"] = out["rss_within"] and out.get("redis", {}).get("within", True)
    return out


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _env(**extra: str) -> dict[str, str]:
    # The shipped per-IP limits (start_bff raises them for load scenarios), the shrunk caps,
    # the load generator as the trusted proxy, and an offline receiver that is down.
    shipped = {k: str(shipped_default(k[4:].lower())) for k in LOAD_LIMITS}
    return {
        **shipped,
        **{k: str(v) for k, v in CAPS.items()},
        "BFF_TRUSTED_PROXIES": "127.0.0.1/32",
        "BFF_OFFLINE_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook",
        "BFF_OFFLINE_WEBHOOK_SECRET": _whsec(),
        **extra,
    }


def _one(backend: str, sizes: Sizes, redis_url: str | None) -> dict[str, Any]:
    prefix = f"bench-hostile-{secrets.token_hex(4)}"
    extra = {} if redis_url is None else {"BFF_REDIS_URL": redis_url, "BFF_REDIS_PREFIX": prefix}
    try:
        with servers() as started:
            emulator = start_emulator(join_delay=1.0, reply_delay=1.0, log_limit=2000)
            started.append(emulator)
            bff = start_bff(emulator.url, **_env(**extra))
            started.append(bff)
            pid = server_pid(bff)
            log(f"hostile ({backend}): pid {pid}, {sizes.duration_s:.0f} s of attack")
            result = _measure(backend, bff.url, pid, sizes, redis_url, prefix)
            logs = Path(bff.log_path).read_text(errors="replace")
            result["tracebacks_in_log"] = logs.count("Traceback")
    finally:
        if redis_url is not None:  # once the process is gone: it writes keys until then
            run_loop(_clean(redis_url, prefix))
    log(
        f"hostile ({backend}): rss {result['rss_mib']}, honest {result['honest']['success']}, "
        f"echo p99 {result['honest']['echo_p99_ms']} ms"
    )
    return result


async def _clean(url: str, prefix: str) -> None:
    """Deletes the run's keys (its prefix is its own) from the shared Redis."""
    client = Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    redis_url = os.environ.get("BFF_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    rows = [_one("memory", sizes, None), _one("redis", sizes, redis_url)]
    return {
        "duration_s": sizes.duration_s,
        "warmup_s": sizes.warmup_s,
        "pace": asdict(sizes.pace),
        "caps": CAPS,
        "costs": {"process": asdict(PROCESS), "redis": asdict(REDIS)},
        "backends": rows,
        "hostile_within_ceilings": all(row["within"] for row in rows),
        "hostile_honest_success": min(row["honest"]["success"] or 0.0 for row in rows),
        "hostile_echo_p99_ms": max(row["honest"]["echo_p99_ms"] for row in rows),
    }


if __name__ == "__main__":
    scenario_main("hostile", run)
