"""REST overhead: the upstream-compatible routes through chat-bff against the same calls made
directly to the upstream (the emulator), on the same chats, interleaved one by one on
keep-alive connections so both arms see the same moment's noise.

- latency, per route: GET chat, GET messages?index=1 (both served from chat-bff's cache),
  POST SendMessage (forwarded upstream; spaced 20 ms apart, because each send makes the chat's
  poller poll at once in the same process); added p50/p99 = ours - direct;
- cached-read throughput of one chat-bff process: closed loop, 32 keep-alive connections,
  GET chat and GET messages?index=1 alternately over a few chats; the same load against the
  emulator directly, and against a bare FastAPI app answering chat-bff's own answers from a
  dict (`bare_api`: the limit of any FastAPI route on this machine, so the ratio to it is
  what chat-bff itself costs). The read latencies are measured against that bare app too.
  The load generator's own CPU is reported: near 100% would mean the figure is the
  client's limit, not the server's.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.agents import UPSTREAM_HEADERS, create_many
from bench.common import (
    Proc,
    cpu_seconds,
    log,
    percentile,
    profile,
    r,
    run_loop,
    scenario_main,
    server_pid,
    servers,
    start_bff,
    start_emulator,
)
from bench.wire import Connection


@dataclass
class Sizes:
    requests: int  # per read route and arm
    writes: int  # sends per arm
    throughput_s: float
    connections: int = 32
    chats: int = 8


FULL = Sizes(requests=1000, writes=300, throughput_s=10.0)
QUICK = Sizes(requests=100, writes=30, throughput_s=2.0)


async def _timed(call: Callable[[], Awaitable[tuple[int, bytes]]], into: list[float]) -> None:
    t = time.perf_counter()
    status, body = await call()
    into.append(time.perf_counter() - t)
    if status != 200:
        raise RuntimeError(f"status {status}: {body[:200]!r}")


async def _seed_bare(bff_url: str, bare_url: str, paths: list[str]) -> None:
    """Give the bare app chat-bff's own answers for `paths`."""
    ours, bare = Connection(bff_url), Connection(bare_url)
    answers = {path: await ours.json("GET", path) for path in paths}
    await bare.json("PUT", "/_seed", answers)
    await ours.close()
    await bare.close()


async def _bare_reads(
    sizes: Sizes, bare_url: str, paths: list[str]
) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each read path on the bare app."""
    bare = Connection(bare_url)
    out = {}
    for path in paths:
        times: list[float] = []
        for _ in range(20):
            await bare.request("GET", path)
        for _ in range(sizes.requests):
            await _timed(lambda path=path: bare.request("GET", path), times)
        out[path] = (r(percentile(times, 50) * 1000), r(percentile(times, 99) * 1000))
    await bare.close()
    return out


async def _latency(sizes: Sizes, bff_url: str, emu_url: str, bare_url: str) -> dict[str, Any]:
    created = await create_many([bff_url], emu_url, ["read", "write"])
    (read_handle, read_id), (write_handle, write_id) = created
    ours, direct = Connection(bff_url), Connection(emu_url)
    h = UPSTREAM_HEADERS
    routes: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "GET /chats/{id}": (
            lambda: ours.request("GET", f"/api/v2/chats/{read_handle}"),
            lambda: direct.request("GET", f"/api/v2/chats/{read_id}", headers=h),
        ),
        "GET /chats/{id}/messages?index=1": (
            lambda: ours.request("GET", f"/api/v2/chats/{read_handle}/messages?index=1"),
            lambda: direct.request("GET", f"/api/v2/chats/{read_id}/messages?index=1", headers=h),
        ),
    }
    body = {"operationName": "SendMessage", "text": "hello"}
    routes["POST /chats/{id} SendMessage"] = (
        lambda: ours.request("POST", f"/api/v2/chats/{write_handle}", body),
        lambda: direct.request("POST", f"/api/v2/chats/{write_id}", body, headers=h),
    )
    # Warm both paths (cold cache, first connections).
    for ours_call, direct_call in routes.values():
        for _ in range(20):
            await ours_call()
            await direct_call()
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in routes}
    for name, (ours_call, direct_call) in routes.items():
        # A send pokes the chat's poller, which polls at once in the same process: space the
        # sends so that poll does not land on the next measured request (customers' sends are
        # seconds apart); reads go back to back.
        writes = name.startswith("POST")
        for k in range(sizes.writes if writes else sizes.requests):
            pair = [(ours_call, samples[name][0]), (direct_call, samples[name][1])]
            for call, into in pair if k % 2 else reversed(pair):
                await _timed(call, into)
                if writes:
                    await asyncio.sleep(0.02)
    await ours.close()
    await direct.close()
    read_paths = {
        "GET /chats/{id}": f"/api/v2/chats/{read_handle}",
        "GET /chats/{id}/messages?index=1": f"/api/v2/chats/{read_handle}/messages?index=1",
    }
    await _seed_bare(bff_url, bare_url, list(read_paths.values()))
    bare = await _bare_reads(sizes, bare_url, list(read_paths.values()))
    rows = {}
    for name, (o, d) in samples.items():
        rows[name] = {
            "ours_p50_ms": r(percentile(o, 50) * 1000),
            "ours_p99_ms": r(percentile(o, 99) * 1000),
            "direct_p50_ms": r(percentile(d, 50) * 1000),
            "direct_p99_ms": r(percentile(d, 99) * 1000),
            "added_p50_ms": r((percentile(o, 50) - percentile(d, 50)) * 1000),
            "added_p99_ms": r((percentile(o, 99) - percentile(d, 99)) * 1000),
            "requests": len(o),
        }
        if name in read_paths:
            b50, b99 = bare[read_paths[name]]
            rows[name] |= {
                "bare_p50_ms": b50,
                "bare_p99_ms": b99,
                "ours_over_bare_p50": r(rows[name]["ours_p50_ms"] / b50, 2),
                "ours_over_bare_p99": r(rows[name]["ours_p99_ms"] / b99, 2),
            }
    return rows


async def _throughput(
    sizes: Sizes, url: str, paths: list[str], pid: int, name: str, headers: dict[str, str]
) -> dict[str, Any]:
    done = 0
    errors = 0
    stop = time.monotonic() + sizes.throughput_s

    async def worker(k: int) -> None:
        nonlocal done, errors
        conn = Connection(url)
        i = k
        try:
            while time.monotonic() < stop:
                status, _ = await conn.request("GET", paths[i % len(paths)], headers=headers)
                i += 1
                if status == 200:
                    done += 1
                else:
                    errors += 1
        finally:
            await conn.close()

    spy = await profile(pid, sizes.throughput_s - 1, f"rest-{name}")
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(sizes.connections)))
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    if spy is not None:
        await spy.wait()
    client = (me1.ru_utime - me0.ru_utime) + (me1.ru_stime - me0.ru_stime)
    return {
        "reads_per_s": r(done / (t1 - t0), 0),
        "errors": errors,
        "server_cpu_percent": r(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "client_cpu_percent": r(100 * client / (t1 - t0), 1),
    }


async def _scenario(
    sizes: Sizes, bff_url: str, bff_pid: int, emu_url: str, emu_pid: int, bare: Proc
) -> Any:
    latency = await _latency(sizes, bff_url, emu_url, bare.url)
    log("rest_overhead: latency done")
    chats = await create_many([bff_url], emu_url, [f"t{k}" for k in range(sizes.chats)])
    ours_paths, direct_paths = [], []
    for handle, chat in chats:
        ours_paths += [f"/api/v2/chats/{handle}", f"/api/v2/chats/{handle}/messages?index=1"]
        direct_paths += [f"/api/v2/chats/{chat}", f"/api/v2/chats/{chat}/messages?index=1"]
    for handle, _ in chats:  # warm the cache
        await Connection(bff_url).request("GET", f"/api/v2/chats/{handle}")
    await _seed_bare(bff_url, bare.url, ours_paths)
    ours = await _throughput(sizes, bff_url, ours_paths, bff_pid, "chat-bff", {})
    direct = await _throughput(sizes, emu_url, direct_paths, emu_pid, "emulator", UPSTREAM_HEADERS)
    bare_reads = await _throughput(sizes, bare.url, ours_paths, bare.pid, "bare", {})
    return latency, ours, direct, bare_reads


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with servers() as started:
        # The scripted agent greets after 0.5 s and never answers in the run (long reply
        # delay), so sends cost the upstream the same in both arms.
        emu = start_emulator(join_delay=0.5, reply_delay=3600)
        started.append(emu)
        bff = start_bff(emu.url)
        started.append(bff)
        bare = Proc("bench.bare_api", health_path="/healthz").start()
        started.append(bare)
        latency, ours, direct, bare_reads = run_loop(
            _scenario(sizes, bff.url, server_pid(bff), emu.url, emu.pid, bare)
        )
    worst_p50 = max(latency, key=lambda route: latency[route]["added_p50_ms"])
    worst_p99 = max(latency, key=lambda route: latency[route]["added_p99_ms"])
    return {
        "rest_overhead_p50_ms": latency[worst_p50]["added_p50_ms"],
        "rest_overhead_p99_ms": latency[worst_p99]["added_p99_ms"],
        "worst_route_p50": worst_p50,
        "worst_route_p99": worst_p99,
        "cached_reads_per_s": ours["reads_per_s"],
        "cached_reads_ratio_to_bare": r(ours["reads_per_s"] / bare_reads["reads_per_s"], 2),
        "latency": latency,
        "throughput": {"chat-bff": ours, "emulator_direct": direct, "bare_fastapi": bare_reads},
        "connections": sizes.connections,
    }


if __name__ == "__main__":
    scenario_main("rest_overhead", run)
