"""Idle SSE streams on one process: how many, memory per stream, heartbeat CPU, connect time.

chat-bff: N streams spread over a few chats (nobody talks after the agent's greeting), from
loopback addresses 127.0.0.2.. (to spread client ports), per-IP and per-chat stream limits
raised for the load generator. Baseline, same run: a bare sse-starlette endpoint
(`bench/baseline_sse.py`) under the same uvicorn settings, measured the same way. A third
process, for reference only, serves the same stream as plain ASGI with one shared heartbeat
loop (`--mode asgi`): the floor of this stack.

- connect time: TCP connect -> first event (`state`) received, 50 connects in flight;
- memory per stream: (RSS with N streams - RSS with the first `warm` streams) / (N - warm),
  from /proc/<pid>/status, after a settle;
- heartbeat CPU: the server's CPU time (utime + stime) over a window of two heartbeat periods
  with all streams idle, as % of one core; the heartbeat comments the clients received in the
  window are counted to show they flowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from app.core.handles import HandleCodec
from bench.agents import create_many_upstream
from bench.common import (
    SECRET_KEY,
    Proc,
    cpu_seconds,
    log,
    percentile,
    profile,
    r,
    rss_kib,
    run_loop,
    scenario_main,
    server_pid,
    servers,
    start_bff,
    start_emulator,
)
from bench.wire import SseEvent, open_stream, read_events

HEARTBEAT_S = 15.0  # chat-bff's default (and the most the design allows)


@dataclass
class Sizes:
    streams: int
    chats: int
    warm: int
    window_s: float


FULL = Sizes(streams=10_000, chats=20, warm=200, window_s=2 * HEARTBEAT_S)
QUICK = Sizes(streams=300, chats=3, warm=50, window_s=HEARTBEAT_S / 5)


@dataclass
class Streams:
    """The open streams of one run, their connect times and the heartbeats they got."""

    connect_s: list[float] = field(default_factory=list)
    open: int = 0
    failed: int = 0
    comments: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def one(self, url: str, path: str, local_ip: str) -> None:
        started = time.monotonic()
        connected = asyncio.get_running_loop().create_future()

        def first(event: SseEvent) -> bool:
            if not connected.done():
                connected.set_result(time.monotonic())
            return False

        def comment() -> None:
            self.comments += 1

        async def hold() -> None:
            try:
                reader, writer, status = await open_stream(url, path, local_ip=local_ip)
            except OSError as error:
                if not connected.done():
                    connected.set_exception(error)
                return
            self.writers.append(writer)
            if status != 200:
                if not connected.done():
                    connected.set_exception(RuntimeError(f"status {status}"))
                return
            try:
                await read_events(reader, first, comment)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                if connected.done() and not connected.exception():
                    self.open -= 1

        self.tasks.append(asyncio.create_task(hold()))
        try:
            at = await asyncio.wait_for(connected, 30)
        except (OSError, RuntimeError, TimeoutError):
            self.failed += 1
            return
        self.open += 1
        self.connect_s.append(at - started)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in self.writers:
            writer.close()


async def _measure(name: str, url: str, paths: list[str], pid: int, sizes: Sizes) -> dict[str, Any]:
    streams = Streams()
    ips = [f"127.0.0.{2 + k}" for k in range(50)]

    async def open_range(start: int, stop: int) -> None:
        queue = list(range(start, stop))

        async def worker() -> None:
            while queue:
                k = queue.pop()
                await streams.one(url, paths[k % len(paths)], ips[k % len(ips)])

        await asyncio.gather(*(worker() for _ in range(50)))

    await open_range(0, sizes.warm)
    await asyncio.sleep(2)
    rss_warm = rss_kib(pid)
    t = time.monotonic()
    await open_range(sizes.warm, sizes.streams)
    opening_s = time.monotonic() - t
    log(f"idle_streams {name}: {streams.open} open, {streams.failed} failed in {opening_s:.1f} s")
    await asyncio.sleep(3)
    rss_full = rss_kib(pid)
    comments0, cpu0, t0 = streams.comments, cpu_seconds(pid), time.monotonic()
    spy = await profile(pid, sizes.window_s - 1, f"idle-{name}")
    await asyncio.sleep(sizes.window_s)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    heartbeats = streams.comments - comments0
    if spy is not None:
        await spy.wait()
    still_open = streams.open
    await streams.close()
    added = max(1, len(streams.connect_s) - sizes.warm)
    return {
        "streams": still_open,
        "failed": streams.failed,
        "rss_warm_mib": r(rss_warm / 1024, 1),
        "rss_full_mib": r(rss_full / 1024, 1),
        "kib_per_stream": r((rss_full - rss_warm) / added, 1),
        "cpu_percent": r(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "window_s": r(t1 - t0, 1),
        "heartbeats_received": heartbeats,
        "connect_p50_ms": r(percentile(streams.connect_s, 50) * 1000, 1),
        "connect_p99_ms": r(percentile(streams.connect_s, 99) * 1000, 1),
        "connects_per_s": r((len(streams.connect_s) - sizes.warm) / opening_s, 0),
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    heartbeat = str(HEARTBEAT_S if not quick else HEARTBEAT_S / 5)
    with servers() as started:
        emu = start_emulator(join_delay=1.0)
        started.append(emu)
        bff = start_bff(
            emu.url,
            BFF_SSE_HEARTBEAT_S=heartbeat,
            BFF_MAX_STREAMS_PER_CHAT=str(sizes.streams),
        )
        started.append(bff)
        chats = run_loop(create_many_upstream(emu.url, [f"i{k}" for k in range(sizes.chats)]))
        codec = HandleCodec([SECRET_KEY.encode()])
        paths = [f"/api/v2/chats/{codec.seal(chat)}/events" for chat in chats]
        ours = run_loop(_measure("chat-bff", bff.url, paths, server_pid(bff), sizes))
        bff.kill()
        base = Proc("bench.baseline_sse", ("--heartbeat", heartbeat), health_path="/healthz")
        started.append(base.start())
        baseline = run_loop(_measure("baseline", base.url, ["/events"], base.pid, sizes))
        base.kill()
        lean = Proc(
            "bench.baseline_sse",
            ("--heartbeat", heartbeat, "--mode", "asgi"),
            health_path="/healthz",
        )
        started.append(lean.start())
        reference = run_loop(_measure("asgi-reference", lean.url, ["/events"], lean.pid, sizes))
    return {
        "idle_streams": ours["streams"],
        "kib_per_stream": ours["kib_per_stream"],
        "baseline_kib_per_stream": baseline["kib_per_stream"],
        "heartbeat_cpu_percent": ours["cpu_percent"],
        "heartbeat_s": float(heartbeat),
        "target_streams": sizes.streams,
        "ours": ours,
        "baseline": baseline,
        "reference_pure_asgi": reference,
    }


if __name__ == "__main__":
    scenario_main("idle_streams", run)
