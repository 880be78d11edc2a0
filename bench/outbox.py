"""The webhook outbox's cost as its backlog grows: put, claim (a batch of 16) and done, on the
memory bus and on Redis, with 100, 10,000 and 100,000 items waiting (a receiver that is down).

`python -m bench.outbox [--quick] [--out FILE]`. Redis: `BFF_BENCH_REDIS_URL` (default
redis://127.0.0.1:6379/0) under a private prefix, deleted afterwards. Each figure is the median
of many operations, in microseconds. tests/test_outbox_cost.py asserts the same property
without timings (comparisons and commands counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from typing import Any

from redis.asyncio import Redis

from app.bus import Bus, MemoryBus, RedisBus
from app.bus.hooks import OutboxItem, OutboxQuota

QUOTA = OutboxQuota(max_items=10_000_000, max_bytes=1 << 40)
PAYLOAD = "x" * 400  # about a push notice
BATCH = 16
SAMPLES = 200


async def fill(bus: Bus, backlog: int) -> None:
    chunk = 50  # within the Redis client's connection pool
    for start in range(0, backlog, chunk):
        await asyncio.gather(
            *(
                bus.outbox_put(OutboxItem(f"offline:{n}", PAYLOAD, "offline"), QUOTA)
                for n in range(start, min(backlog, start + chunk))
            )
        )


async def measure(bus: Bus, backlog: int, samples: int) -> dict[str, float]:
    await fill(bus, backlog)
    puts, claims, dones = [], [], []
    for n in range(samples):
        item = OutboxItem(f"offline:extra-{n}", PAYLOAD, "offline")
        t = time.perf_counter()
        await bus.outbox_put(item, QUOTA)
        puts.append(time.perf_counter() - t)
        t = time.perf_counter()
        batch = await bus.outbox_claim("offline", BATCH, 30)
        claims.append(time.perf_counter() - t)
        assert len(batch.claims) == BATCH
        t = time.perf_counter()
        await bus.outbox_done(batch.claims[0], done_ttl_s=3600, remember=backlog)
        dones.append(time.perf_counter() - t)
        # The rest are due again at once: the backlog stays as large, and all of it due.
        await asyncio.gather(*(bus.outbox_retry(c, 0) for c in batch.claims[1:]))
    return {
        "put_us": round(statistics.median(puts) * 1e6, 1),
        "claim_us": round(statistics.median(claims) * 1e6, 1),
        "done_us": round(statistics.median(dones) * 1e6, 1),
    }


async def run(quick: bool) -> dict[str, Any]:
    sizes = (100, 1_000) if quick else (100, 10_000, 100_000)
    samples = 20 if quick else SAMPLES
    url = os.environ.get("BFF_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    results: dict[str, Any] = {"batch": BATCH, "payload_bytes": len(PAYLOAD)}
    for kind in ("memory", "redis"):
        for size in sizes:
            prefix = f"bench-outbox-{secrets.token_hex(4)}"
            bus: Bus = MemoryBus() if kind == "memory" else RedisBus(url, prefix=prefix)
            try:
                results[f"{kind}_{size}"] = await measure(bus, size, samples)
            finally:
                await bus.aclose()
                if kind == "redis":
                    client = Redis.from_url(url)
                    async for key in client.scan_iter(match=f"{prefix}:*", count=500):
                        await client.unlink(key)
                    await client.aclose()
            print(kind, size, results[f"{kind}_{size}"], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.outbox")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    results = asyncio.run(run(args.quick))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
