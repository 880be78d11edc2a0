"""What every scenario shares: real server processes (emulator, chat-bff, Redis, the bare SSE
baseline), per-process CPU and memory readings, percentiles, and the scenario entry point.

Servers run as separate OS processes on loopback ports; the scenario's own process is the
load generator (browsers and apps), so client and server never share an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from harness.redis import RedisServer
from harness.servers import CONTACT_CENTER_ID, SECRET_KEY, ServerProcess, bff_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

__all__ = [
    "CONTACT_CENTER_ID",
    "SECRET_KEY",
    "Proc",
    "RedisServer",
    "ServerProcess",
    "cpu_seconds",
    "percentile",
    "raise_nofile",
    "rss_kib",
    "start_bff",
    "start_emulator",
]


def raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Proc(ServerProcess):
    """A bench server started from an argv (`python -m bench.<x> --port N ...`) in the
    repository, logs in a temp file, ready once `health_path` answers 200."""

    def __init__(
        self,
        module: str,
        args: tuple[str, ...] = (),
        *,
        health_path: str = "/",
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            module.rsplit(".", 1)[-1],
            argv=[sys.executable, "-m", module, "--port", "{port}", *args],
            env=env,
            health_path=health_path,
            cwd=ROOT,
            log_prefix="bench",
        )


def start_emulator(
    *,
    join_delay: float = 2.0,
    reply_delay: float = 1.0,
    idle_disconnect: float = 45.0,
    scripted: bool = True,
    log_limit: int = 20000,
) -> Proc:
    args = (
        "--contact-center-id",
        CONTACT_CENTER_ID,
        "--agent-join-delay",
        str(join_delay),
        "--agent-reply-delay",
        str(reply_delay),
        "--idle-disconnect",
        str(idle_disconnect),
        "--log-limit",
        str(log_limit),
        *(() if scripted else ("--no-scripted-agent",)),
    )
    return Proc("bench.emulator", args, health_path="/_emulator/stats").start()


# Generous abuse limits: the load generator is one client IP (or a few) doing the work of
# thousands of customers. Everything else stays at its default unless a scenario says so.
LOAD_LIMITS = {
    "BFF_CHAT_CREATE_PER_MINUTE": "600000",
    "BFF_CHAT_CREATE_BURST": "100000",
    "BFF_SEND_PER_MINUTE": "600000",
    "BFF_SEND_BURST": "100000",
    "BFF_MAX_STREAMS_PER_IP": "100000",
    # The per-process cap (load shedding) is above what any scenario opens.
    "BFF_MAX_STREAMS": "100000",
}


def start_bff(upstream_url: str, **extra: str) -> ServerProcess:
    """`chat-bff serve` exactly as shipped (python -m app.cli serve), configured by env."""
    return ServerProcess("serve", env=bff_env(upstream_url, **{**LOAD_LIMITS, **extra})).start(
        wait_s=60.0
    )


def shipped_default(name: str) -> Any:
    """A setting's default as chat-bff ships it (app/config/): scenarios measure the
    defaults and say which they were, rather than pin values of their own."""
    from app.config.settings import Settings

    return Settings.model_fields[name].default


def server_pid(server: ServerProcess) -> int:
    return server.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def r(value: float, digits: int = 3) -> float:
    return round(value, digits) if math.isfinite(value) else value


def machine() -> dict[str, Any]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": model,
        "python": sys.version.split()[0],
    }


def run_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run the load generator on uvloop when available (as uvicorn serves the other side)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


@contextlib.contextmanager
def servers() -> Iterator[list[Any]]:
    """Collects started servers and kills them all on the way out, whatever happened."""
    started: list[Any] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.kill() if not isinstance(server, RedisServer) else server.stop()


async def profile(pid: int, seconds: float, name: str) -> asyncio.subprocess.Process | None:
    """With BENCH_PROFILE=<dir>: sample `pid` with py-spy for `seconds` in the background into
    <dir>/<name>.txt (collapsed stacks; `python -m bench.profiles` summarises them). Sampling
    pauses the process briefly: figures of a profiled run are not the results."""
    where = os.environ.get("BENCH_PROFILE")
    if not where:
        return None
    Path(where).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, tiny
    spy = Path(sys.executable).with_name("py-spy")
    args = ["record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "-f", "raw"]
    out = str(Path(where) / f"{name}.txt")
    log(f"profiling {name} (pid {pid}) for {seconds:.0f} s into {out}")
    return await asyncio.create_subprocess_exec(
        str(spy) if spy.exists() else "py-spy",
        *args,
        "-o",
        out,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def scenario_main(name: str, run: Callable[[bool], dict[str, Any]]) -> None:
    """`python -m bench.<name> [--quick]`: run one scenario alone, print its figures."""
    parser = argparse.ArgumentParser(prog=f"bench.{name}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    raise_nofile()
    result = run(args.quick)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


class Background:
    """One owned task running `_run` between `start()` and `stop()`: the shape of every load
    generator here. Subclasses declare `_task: asyncio.Task[None] | None = None`."""

    _task: asyncio.Task[None] | None

    def start(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        raise NotImplementedError
