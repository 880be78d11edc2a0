"""Soak: ten minutes of churn on one chat-bff process, to see that nothing accumulates.

Customers create chats, stream them, send (some with an Idempotency-Key, some retried),
long-poll and complete them; others open streams and drop them without reading, stop reading
mid-stream, abandon long-polls, dribble headers, send oversized headers and bodies, garbage
JSON, bad handles and bad parameters. All at once, for the whole run, against the emulator.

Reported: the process's RSS, open file descriptors and asyncio tasks, each the median over a
window at the start (after a warm-up at full load) and over one at the end (same load), and
their growth (medians: the task count swings with the requests in flight, and spikes for a
moment now and then); every answer by status, and how many were >= 500 (target 0). Flat
means every growth is within 10 %. Stores that keep things for a while by design run
shortened (SHORTENED) so that ten minutes reach a steady state: what still grows then leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    log,
    r,
    rss_kib,
    run_loop,
    scenario_main,
    server_pid,
    servers,
    start_bff,
    start_emulator,
)

FLAT_WITHIN = 0.10
# What the process keeps for a while by design, shortened so that ten minutes reach the steady
# state the soak watches (anything still growing then is a leak): abandoned chats are polled
# for the background keep-alive after their last reader (shipped: 10 minutes), the in-process
# bus keeps a chat's cache for a day after its last change (about 13 KB per chat of this
# churn), and answers to Idempotency-Keys for an hour.
SHORTENED = {
    "BFF_BACKGROUND_KEEPALIVE_S": "60",
    "BFF_CACHE_RETENTION_S": "120",
    "BFF_IDEMPOTENCY_WINDOW_S": "120",
}
CHAT = {"operationName": "RequestChat", "nickname": "Soak", "subject": "churn"}


@dataclass
class Sizes:
    duration_s: float
    warmup_s: float
    window_s: float
    customers: int
    droppers: int
    pollers: int
    vandals: int


# The warm-up outlasts every shortened store (SHORTENED): from then on entries expire as fast
# as new ones come, and the process is at its steady state.
FULL = Sizes(
    duration_s=600, warmup_s=180, window_s=120, customers=12, droppers=4, pollers=6, vandals=4
)
QUICK = Sizes(
    duration_s=60, warmup_s=10, window_s=20, customers=4, droppers=2, pollers=2, vandals=2
)


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def answer(self, what: str, status: int) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{what} -> {status}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def asyncio_tasks(url: str) -> int:
    text = httpx.get(url + "/metrics", timeout=5).text
    match = re.search(r"^bff_asyncio_tasks (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


class Soak:
    def __init__(self, url: str, sizes: Sizes) -> None:
        self.url = url
        self.host, self.port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        self.sizes = sizes
        self.tally = Tally()
        self.live: list[str] = []  # handles of chats still going
        self.stop_at = 0.0

    # -- the churn ---------------------------------------------------------------------

    async def _request(
        self, http: httpx.AsyncClient, what: str, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            answer = await http.request(method, path, **kw)
        except httpx.HTTPError:
            self.tally.actions["client-side errors"] += 1
            return None
        self.tally.answer(what, answer.status_code)
        return answer

    async def customer(self) -> None:
        """A whole chat: create, stream, a few sends (keyed, sometimes retried), complete."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            while time.monotonic() < self.stop_at:
                created = await self._request(http, "create", "POST", "/api/v2/chats", json=CHAT)
                if created is None or created.status_code != 200:
                    await asyncio.sleep(1)
                    continue
                handle = created.json()["id"]
                self.tally.actions["chats created"] += 1
                self.live.append(handle)
                stream = asyncio.create_task(self._watch(http, handle))
                for n in range(random.randint(1, 3)):
                    await asyncio.sleep(random.uniform(0.5, 2.0))
                    body = {"operationName": "SendMessage", "text": f"message {n}"}
                    headers = {"Idempotency-Key": str(uuid.uuid4())} if n % 2 == 0 else {}
                    path = f"/api/v2/chats/{handle}"
                    await self._request(http, "send", "POST", path, json=body, headers=headers)
                    if headers and random.random() < 0.5:  # a retry of a lost answer
                        await self._request(http, "send", "POST", path, json=body, headers=headers)
                        self.tally.actions["keyed retries"] += 1
                    await self._request(
                        http, "read", "GET", path + "/messages", params={"index": 1}
                    )
                if random.random() < 0.8:
                    await self._request(
                        http,
                        "complete",
                        "POST",
                        f"/api/v2/chats/{handle}",
                        json={"operationName": "Complete"},
                    )
                    self.tally.actions["chats completed"] += 1
                else:
                    self.tally.actions["chats abandoned"] += 1
                with contextlib.suppress(ValueError):
                    self.live.remove(handle)
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream

    async def _watch(self, http: httpx.AsyncClient, handle: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            async with http.stream("GET", f"/api/v2/chats/{handle}/events") as stream:
                self.tally.answer("stream", stream.status_code)
                self.tally.actions["streams read"] += 1
                async for _ in stream.aiter_lines():
                    pass

    async def dropper(self) -> None:
        """Streams opened and dropped without reading, or left unread, or reset."""
        while time.monotonic() < self.stop_at:
            if not self.live:
                await asyncio.sleep(0.5)
                continue
            handle = random.choice(self.live)
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(
                    f"GET /api/v2/chats/{handle}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                )
                how = random.choice(["at once", "after a moment", "unread for a while"])
                if how == "after a moment":
                    await asyncio.sleep(random.uniform(0.1, 1.0))
                elif how == "unread for a while":
                    # Never read: the stream's frames pile up in the socket buffers.
                    await asyncio.sleep(random.uniform(5, 20))
                writer.transport.abort()
                self.tally.actions[f"streams dropped {how}"] += 1
            await asyncio.sleep(random.uniform(0.1, 0.5))

    async def long_poller(self) -> None:
        """Long-polls on live chats; some are abandoned half way."""
        async with httpx.AsyncClient(base_url=self.url, timeout=40) as http:
            while time.monotonic() < self.stop_at:
                if not self.live:
                    await asyncio.sleep(0.5)
                    continue
                handle = random.choice(self.live)
                poll = self._request(
                    http,
                    "long-poll",
                    "GET",
                    f"/api/v2/chats/{handle}/messages",
                    params={"index": 1000, "wait": random.choice([1, 5, 10])},
                )
                if random.random() < 0.3:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(poll, timeout=random.uniform(0.2, 2))
                    self.tally.actions["long-polls abandoned"] += 1
                else:
                    await poll
                    self.tally.actions["long-polls"] += 1

    async def vandal(self) -> None:
        """Everything a broken or hostile client sends."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            while time.monotonic() < self.stop_at:
                kind = random.choice(
                    ["json", "big", "handle", "param", "route", "slow", "header", "key"]
                )
                self.tally.actions[f"bad requests: {kind}"] += 1
                handle = random.choice(self.live) if self.live else "x" * 60
                if kind == "json":
                    await self._request(
                        http,
                        kind,
                        "POST",
                        "/api/v2/chats",
                        content=b'{"nick',
                        headers={"Content-Type": "application/json"},
                    )
                elif kind == "big":
                    await self._request(
                        http,
                        kind,
                        "POST",
                        "/api/v2/chats",
                        content=b"x" * 100_000,
                        headers={"Content-Type": "application/json"},
                    )
                elif kind == "handle":
                    await self._request(http, kind, "GET", f"/api/v2/chats/{handle}%0A")
                elif kind == "param":
                    await self._request(
                        http,
                        kind,
                        "GET",
                        f"/api/v2/chats/{handle}/messages",
                        params={"index": "²", "wait": "nan"},
                    )
                elif kind == "route":
                    await self._request(http, kind, "DELETE", "/api/v2/chats")
                elif kind == "key":
                    await self._request(
                        http,
                        kind,
                        "POST",
                        f"/api/v2/chats/{handle}",
                        json={"operationName": "SendMessage", "text": str(random.random())},
                        headers={"Idempotency-Key": "reused-by-every-soak-client"},
                    )
                elif kind == "header":
                    await self._raw(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n")
                else:
                    await self._slow_headers()
                await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _raw(self, request: bytes) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(request)
            head = await asyncio.wait_for(reader.readline(), 10)
            self.tally.answer("raw", int(head.split()[1]))
            writer.close()

    async def _slow_headers(self) -> None:
        """Headers a line every half second, until the server gives up on them."""
        with contextlib.suppress(OSError, RuntimeError):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            for _ in range(40):
                await asyncio.sleep(0.5)
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            writer.transport.abort()

    async def _keep_going(self, actor: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """An actor that trips over something of its own starts again: the load must not
        thin out over ten minutes because of the load generator."""
        while time.monotonic() < self.stop_at:
            try:
                await actor()
            except Exception as error:
                self.tally.actions[f"load generator errors ({type(error).__name__})"] += 1
                await asyncio.sleep(0.5)

    # -- the measurement ---------------------------------------------------------------

    async def run(self, pid: int) -> dict[str, Any]:
        sizes = self.sizes
        started = time.monotonic()
        self.stop_at = started + sizes.duration_s
        actors = (
            [self.customer for _ in range(sizes.customers)]
            + [self.dropper for _ in range(sizes.droppers)]
            + [self.long_poller for _ in range(sizes.pollers)]
            + [self.vandal for _ in range(sizes.vandals)]
        )
        load = asyncio.gather(*(self._keep_going(actor) for actor in actors))
        samples: list[tuple[float, int, int, int]] = []
        while time.monotonic() < self.stop_at:
            await asyncio.sleep(1)
            at = time.monotonic() - started
            tasks = await asyncio.to_thread(asyncio_tasks, self.url)
            samples.append((at, rss_kib(pid), open_fds(pid), tasks))
            if len(samples) % 30 == 0:
                log(
                    f"soak {at:.0f} s: rss {samples[-1][1]} KiB, fds {samples[-1][2]}, "
                    f"tasks {samples[-1][3]}, errors >= 500: {len(self.tally.server_errors)}"
                )
        await load
        first = [s for s in samples if sizes.warmup_s <= s[0] < sizes.warmup_s + sizes.window_s]
        last = [s for s in samples if s[0] >= sizes.duration_s - sizes.window_s]

        def median(rows: list[tuple[float, int, int, int]], i: int) -> float:
            return float(statistics.median(row[i] for row in rows)) if rows else 0.0

        out: dict[str, Any] = {
            "shortened": SHORTENED,
            "duration_s": sizes.duration_s,
            "warmup_s": sizes.warmup_s,
            "window_s": sizes.window_s,
            "actors": {
                "customers": sizes.customers,
                "droppers": sizes.droppers,
                "long_pollers": sizes.pollers,
                "vandals": sizes.vandals,
            },
        }
        flat = True
        for i, name in ((1, "rss_kib"), (2, "open_fds"), (3, "asyncio_tasks")):
            start, end = median(first, i), median(last, i)
            growth = (end - start) / start if start else 0.0
            flat = flat and growth <= FLAT_WITHIN
            out[name] = {
                "start": r(start, 1),
                "end": r(end, 1),
                "growth": r(growth, 4),
                "max": max(row[i] for row in samples),
            }
        out["flat"] = flat
        out["answers"] = sum(self.tally.statuses.values())
        out["by_status"] = {str(k): v for k, v in sorted(self.tally.statuses.items())}
        out["soak_server_errors"] = len(self.tally.server_errors)
        out["server_error_examples"] = self.tally.server_errors[:10]
        out["actions"] = dict(sorted(self.tally.actions.items()))
        out["soak_rss_growth"] = out["rss_kib"]["growth"]
        # Every tenth sample (seconds, RSS KiB, fds, tasks): the shape, not the bulk.
        out["samples"] = [[round(a, 1), b, c, d] for a, b, c, d in samples[::10]]
        return out


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with servers() as started:
        emulator = start_emulator(join_delay=0.5, reply_delay=0.5, log_limit=2000)
        started.append(emulator)
        bff = start_bff(emulator.url, BFF_MAX_STREAMS_PER_IP="1000", **SHORTENED)
        started.append(bff)
        pid = server_pid(bff)
        log(f"soak: {sizes.duration_s:.0f} s of churn on one process (pid {pid})")
        result: dict[str, Any] = run_loop(Soak(bff.url, sizes).run(pid))
        tracebacks = Path(bff.log_path).read_text(errors="replace").count("Traceback")
        result["tracebacks_in_log"] = tracebacks
        log(f"soak: {json.dumps({k: result[k] for k in ('rss_kib', 'open_fds', 'asyncio_tasks')})}")
        return result


if __name__ == "__main__":
    scenario_main("soak", run)
