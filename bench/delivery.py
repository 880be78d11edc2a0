"""Delivery latency: agents post at random moments into N watched chats on one chat-bff
process; each chat's customer has its browser's SSE stream open. Latency = browser receive
time - the emulator's commit time of the message (`utcTime`, ms, same machine clock), divided
by the poll interval. A share of the customers also send messages: send-to-echo = POST
SendMessage to chat-bff -> that message's event on the customer's own stream.

Agents keep every chat lively (gaps uniform in [0.5, 1.5] x the mean gap, so no chat falls
into the quiet cadence): the figure is the latency at chat-bff's default BFF_POLL_CEILING_S.

Baseline, same run: chat-bff is stopped, N fresh chats are polled directly from the load
generator with the same upstream request budget chat-bff used (its requests per second over
the window, spread evenly: one poll per chat every N / budget seconds), with the same agents
and senders; latency measured the same way (commit -> poll answer received).

Everything committed or sent inside the window counts: a message that has not arrived
`GRACE_S` after the window (or a send that failed) counts as arriving then, so an overloaded
server's percentiles are lower bounds. Two points in a full run: 200 chats (an instance that
keeps up) and the target's 2,000, which gives the headline figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.handles import HandleCodec
from bench.agents import (
    UPSTREAM_HEADERS,
    DirectPoller,
    Said,
    Talker,
    create_many_upstream,
)
from bench.common import (
    SECRET_KEY,
    Background,
    cpu_seconds,
    log,
    percentile,
    profile,
    r,
    run_loop,
    scenario_main,
    server_pid,
    servers,
    shipped_default,
    start_bff,
    start_emulator,
)
from bench.wire import Connection, SseEvent, Viewer

# chat-bff runs with its shipped cadence; latencies are reported relative to its interval.
POLL_INTERVAL_S = float(shipped_default("poll_ceiling_s"))


@dataclass
class Sizes:
    chats: int
    senders: int
    window_s: float
    mean_gap_s: float
    send_gap_s: float


# The target (2,000 watched chats) and, below it, a light load showing the latency of an
# instance that keeps up; the headline figures are the target's.
FULL_POINTS = (
    Sizes(chats=200, senders=10, window_s=20.0, mean_gap_s=10.0, send_gap_s=8.0),
    Sizes(chats=2000, senders=100, window_s=30.0, mean_gap_s=10.0, send_gap_s=8.0),
)
QUICK_POINTS = (Sizes(chats=40, senders=4, window_s=5.0, mean_gap_s=3.0, send_gap_s=2.0),)
# How long after the window messages may still arrive; later (or never) counts as arriving then.
GRACE_S = max(3.0, 2 * POLL_INTERVAL_S)


@dataclass
class Recorder:
    """When each agent message and each customer echo reached the customer's browser.

    Latencies are computed after the run for what was sent inside the measuring window; a
    message that never arrived (or a send that failed) counts as arriving at the end of the
    grace period, so a struggling server's percentiles are lower bounds, never flattering."""

    window: tuple[float, float] | None = None
    received: dict[str, float] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)

    def on_message(self, data: dict[str, Any], received: float) -> None:
        text = data.get("text") or ""
        if text.startswith(("agent:", "echo:")):
            self.received.setdefault(text, received)

    def latencies(
        self, said: list[Said], final: float
    ) -> tuple[list[float], int, list[float], int]:
        """(agent latencies, undelivered agent messages, echo latencies, missing echoes)."""
        assert self.window is not None
        start, end = self.window
        agent, lost = [], 0
        for item in said:
            committed = item.utc_ms / 1000
            if not start <= committed <= end:
                continue
            at = self.received.get(item.text)
            if at is None:
                lost += 1
            agent.append((at if at is not None else final) - committed)
        echo, missing = [], 0
        for text, sent in self.sent_at.items():
            if not start <= sent <= end:
                continue
            at = self.received.get(text)
            if at is None:
                missing += 1
            echo.append((at if at is not None else final) - sent)
        return agent, lost, echo, missing


@dataclass
class Sender(Background):
    """A customer who types a message now and then (gaps uniform around `gap_s`)."""

    send: Callable[[str], Any]
    recorder: Recorder
    gap_s: float
    name: str
    sent: int = 0
    errors: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(random.uniform(self.gap_s / 2, self.gap_s * 1.5))
            self.sent += 1
            text = f"echo:{self.name}:{self.sent}"
            self.recorder.sent_at[text] = time.time()
            try:
                await self.send(text)
            except Exception:
                self.errors += 1


async def _until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls state
        await asyncio.sleep(0.2)


def _summary(samples: list[float], interval_s: float) -> dict[str, Any]:
    return {
        "samples": len(samples),
        "p50_ms": r(percentile(samples, 50) * 1000, 1),
        "p99_ms": r(percentile(samples, 99) * 1000, 1),
        "max_ms": r(max(samples, default=float("nan")) * 1000, 1),
        "p50_over_interval": r(percentile(samples, 50) / interval_s),
        "p99_over_interval": r(percentile(samples, 99) / interval_s),
    }


async def _upstream_requests(emulator: Connection, chats: list[str]) -> int:
    by_chat = (await emulator.json("GET", "/_emulator/stats"))["by_chat"]
    return sum(by_chat.get(c, 0) for c in chats)


async def _ours(sizes: Sizes, emu_url: str, bff_url: str, bff_pid: int, emu_pid: int) -> Any:
    # Created upstream and sealed here with the deployment's key, exactly the handles chat-bff
    # would answer: RequestChat through chat-bff is not what this measures, and 2,000 of them
    # through a busy instance would take minutes.
    chats = await create_many_upstream(emu_url, [f"d{k}" for k in range(sizes.chats)])
    codec = HandleCodec([SECRET_KEY.encode()])
    created = [(codec.seal(chat), chat) for chat in chats]
    recorder = Recorder()

    def on_message(event: SseEvent) -> None:
        recorder.on_message(json.loads(event.data), event.at)

    viewers = []
    t = time.monotonic()
    for handle, _ in created:  # at most 200 new streams per second, like a busy site
        viewers.append(Viewer([bff_url], handle, on_message=on_message).start())
        if len(viewers) % 20 == 0:
            await asyncio.sleep(0.1)
    await _until(lambda: all(v.connects > 0 for v in viewers), 60)
    opened = sum(v.connects > 0 for v in viewers)
    log(f"delivery: {opened} streams open after {time.monotonic() - t:.1f} s")
    senders_at = created[-sizes.senders :] if sizes.senders else []
    talk_chats = [chat for _, chat in created[: len(created) - sizes.senders]]

    def sender_for(handle: str) -> Callable[[str], Any]:
        conn = Connection(bff_url)  # the customer's own browser connection

        async def send(text: str) -> None:
            body = {"operationName": "SendMessage", "text": text}
            await conn.json("POST", f"/api/v2/chats/{handle}", body)

        return send

    senders = [
        Sender(sender_for(h), recorder, sizes.send_gap_s, f"s{k}").start()
        for k, (h, _) in enumerate(senders_at)
    ]
    talker = Talker(emu_url, talk_chats, sizes.mean_gap_s, uniform=True, prefix="agent").start()
    emulator = Connection(emu_url)
    all_chats = [chat for _, chat in created]
    await asyncio.sleep(min(5.0, sizes.window_s / 2))  # every chat lively, every poller going
    start = time.time()
    requests0 = await _upstream_requests(emulator, all_chats)
    cpu0 = (time.monotonic(), cpu_seconds(bff_pid), cpu_seconds(emu_pid))
    spy = await profile(bff_pid, sizes.window_s - 2, "delivery-bff")
    await asyncio.sleep(sizes.window_s)
    recorder.window = (start, time.time())
    requests1 = await _upstream_requests(emulator, all_chats)
    cpu1 = (time.monotonic(), cpu_seconds(bff_pid), cpu_seconds(emu_pid))
    await asyncio.sleep(GRACE_S)  # let the last messages of the window arrive
    final = time.time()
    if spy is not None:
        await spy.wait()
    await talker.stop()
    for sender in senders:
        await sender.stop()
    for viewer in viewers:
        await viewer.stop()
    elapsed = cpu1[0] - cpu0[0]
    budget = (requests1 - requests0) / elapsed
    return (
        _figures(recorder, talker, final),
        budget,
        {
            "bff_cpu_percent": r(100 * (cpu1[1] - cpu0[1]) / elapsed, 1),
            "emulator_cpu_percent": r(100 * (cpu1[2] - cpu0[2]) / elapsed, 1),
            "upstream_requests_per_s": r(budget, 1),
            "agent_messages": len(talker.said),
            "sends": sum(s.sent for s in senders),
            "send_errors": sum(s.errors for s in senders),
            "stream_failures": sum(v.failures for v in viewers),
            "reconnects": sum(max(0, v.connects - 1) for v in viewers),
        },
    )


async def _baseline(sizes: Sizes, emu_url: str, budget: float, emu_pid: int) -> Any:
    nicknames = [f"b{k}" for k in range(sizes.chats)]
    chats = await create_many_upstream(emu_url, nicknames)
    interval = sizes.chats / budget
    log(f"delivery baseline: {len(chats)} chats polled every {interval:.2f} s")
    recorder = Recorder()

    def on_message(chat: str, message: dict[str, Any], received: float) -> None:
        recorder.on_message(message, received)

    pollers = [
        DirectPoller(emu_url, chat, interval, with_state=False, on_message=on_message).start()
        for chat in chats
    ]
    senders_at = chats[-sizes.senders :] if sizes.senders else []
    talk_chats = chats[: len(chats) - sizes.senders]

    def sender_for(chat: str) -> Callable[[str], Any]:
        conn = Connection(emu_url)

        async def send(text: str) -> None:
            body = {"operationName": "SendMessage", "text": text}
            await conn.json("POST", f"/api/v2/chats/{chat}", body, headers=UPSTREAM_HEADERS)

        return send

    senders = [
        Sender(sender_for(c), recorder, sizes.send_gap_s, f"s{k}").start()
        for k, c in enumerate(senders_at)
    ]
    talker = Talker(emu_url, talk_chats, sizes.mean_gap_s, uniform=True, prefix="agent").start()
    emulator = Connection(emu_url)
    await asyncio.sleep(min(5.0, sizes.window_s / 2))
    start = time.time()
    requests0 = await _upstream_requests(emulator, chats)
    cpu0 = (time.monotonic(), cpu_seconds(emu_pid))
    await asyncio.sleep(sizes.window_s)
    recorder.window = (start, time.time())
    requests1 = await _upstream_requests(emulator, chats)
    cpu1 = (time.monotonic(), cpu_seconds(emu_pid))
    await asyncio.sleep(max(GRACE_S, min(interval + 0.5, 10.0)))
    final = time.time()
    await talker.stop()
    for sender in senders:
        await sender.stop()
    for poller in pollers:
        await poller.stop()
    elapsed = cpu1[0] - cpu0[0]
    return (
        _figures(recorder, talker, final),
        interval,
        {
            "emulator_cpu_percent": r(100 * (cpu1[1] - cpu0[1]) / elapsed, 1),
            "upstream_requests_per_s": r((requests1 - requests0) / elapsed, 1),
            "poll_every_s": r(interval),
            "agent_messages": len(talker.said),
        },
    )


def _figures(recorder: Recorder, talker: Talker, final: float) -> dict[str, Any]:
    agent, undelivered, echo, missing = recorder.latencies(talker.said, final)
    return {
        "agent": {**_summary(agent, POLL_INTERVAL_S), "undelivered": undelivered},
        "echo": {**_summary(echo, POLL_INTERVAL_S), "undelivered": missing},
    }


def _point(sizes: Sizes) -> dict[str, Any]:
    with servers() as started:
        emu = start_emulator(join_delay=1.0)
        started.append(emu)
        bff = start_bff(emu.url)
        started.append(bff)
        ours, budget, ours_info = run_loop(_ours(sizes, emu.url, bff.url, server_pid(bff), emu.pid))
        bff.kill()
        base, _, base_info = run_loop(_baseline(sizes, emu.url, budget, emu.pid))
    return {
        "chats": sizes.chats,
        "senders": sizes.senders,
        "ours": {**ours, **ours_info},
        "baseline": {**base, **base_info},
    }


def run(quick: bool) -> dict[str, Any]:
    points = [_point(sizes) for sizes in (QUICK_POINTS if quick else FULL_POINTS)]
    target = points[-1]
    return {
        "delivery_p50_over_interval": target["ours"]["agent"]["p50_over_interval"],
        "delivery_p99_over_interval": target["ours"]["agent"]["p99_over_interval"],
        "echo_p99_ms": target["ours"]["echo"]["p99_ms"],
        "poll_interval_s": POLL_INTERVAL_S,
        "grace_s": GRACE_S,
        **target,
        "points": points,
    }


if __name__ == "__main__":
    scenario_main("delivery", run)
