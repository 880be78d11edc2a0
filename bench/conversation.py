"""Conversation: real chats at human pace (`conversation_model`), replayed step for step in
every arm at once, so all arms see the same seeded conversations and the same machine noise.

Arms: chat-bff on 1 and on 3 instances (one Redis) with 1, 2, 5 and 20 viewers per chat
(SSE tabs and long-polling apps, alternating; the first viewer is the customer's own tab), and
two baselines where every viewer polls the upstream itself every 3 s: (a) chat state and
messages, the upstream's documented way; (b) messages only. The customer's typing notices,
sends and Complete go through chat-bff (directly upstream for the baselines); the agents act
through the emulator's control API (its scripted agent is off).

Per arm: upstream reads and writes per chat-minute (the emulator's request log), and delivery
latencies from the emulator's commit (`utcTime`) to each viewer's event: agent texts announced
by a typing notice (the target), the agent's TypingStarted, agent messages that come without
one (the greeting, canned follow-ups, the platform's notice; no target, reported for honesty),
and the customer's echo (send request -> their own tab shows it). Anything not delivered when
a conversation's viewers stop counts as delivered then, and is counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.agents import (
    UPSTREAM_HEADERS,
    AppReader,
    DirectPoller,
    create_many,
    create_upstream,
)
from bench.common import (
    Background,
    RedisServer,
    log,
    percentile,
    r,
    run_loop,
    scenario_main,
    servers,
    shipped_default,
    start_bff,
    start_emulator,
)
from bench.conversation_model import Step, agent_typing_share, conversation
from bench.wire import Connection, SseEvent, Viewer

Kind = Literal["chat-bff", "state+messages", "messages"]
BASELINE_INTERVAL_S = 3.0
TAIL_S = 8.0  # after Complete, before a conversation's viewers stop


@dataclass(frozen=True)
class ArmSpec:
    kind: Kind
    viewers: int
    instances: int = 0

    @property
    def name(self) -> str:
        if self.kind == "chat-bff":
            plural = "s" if self.instances > 1 else ""
            return f"chat-bff, {self.instances} instance{plural}, {self.viewers} viewers"
        return f"baseline {self.kind}, {self.viewers} viewers"


@dataclass(frozen=True)
class Sizes:
    conversations: int
    duration_s: float
    stagger_s: float
    arms: tuple[ArmSpec, ...]


BFF_VIEWERS = (1, 2, 5, 20)
BASE_VIEWERS = (1, 2, 5)
FULL = Sizes(
    conversations=10,
    duration_s=300.0,
    stagger_s=3.0,
    arms=(
        *(ArmSpec("chat-bff", v, n) for n in (1, 3) for v in BFF_VIEWERS),
        *(ArmSpec(kind, v) for kind in ("state+messages", "messages") for v in BASE_VIEWERS),
    ),
)
QUICK = Sizes(
    conversations=1,
    duration_s=45.0,
    stagger_s=0.0,
    arms=(
        ArmSpec("chat-bff", 1, 1),
        ArmSpec("chat-bff", 2, 3),
        ArmSpec("state+messages", 1),
        ArmSpec("messages", 1),
    ),
)


@dataclass
class ArmChat:
    """One conversation's chat in one arm."""

    arm: ArmSpec
    k: int
    upstream_id: str
    customer: Connection  # the customer's tab: chat-bff, or the upstream for a baseline
    path: str
    agent: Connection  # the emulator's control API
    delivered: list[dict[int, float]] = field(default_factory=list)  # per viewer: index -> at
    sent_at: dict[str, float] = field(default_factory=dict)
    viewers: list[Background] = field(default_factory=list)
    failed_steps: int = 0

    def seen_by(self, viewer: int) -> Callable[[dict[str, Any], float], None]:
        while len(self.delivered) <= viewer:
            self.delivered.append({})
        table = self.delivered[viewer]

        def seen(message: dict[str, Any], at: float) -> None:
            table.setdefault(int(message["index"]), at)

        return seen

    async def act(self, step: Step) -> None:
        try:
            if step.actor == "customer":
                body: dict[str, Any] = {"operationName": step.action}
                if step.action == "SendMessage":
                    body["text"] = step.text
                    self.sent_at[step.text] = time.time()
                headers = UPSTREAM_HEADERS if self.arm.kind != "chat-bff" else None
                status, _ = await self.customer.request("POST", self.path, body, headers=headers)
            else:
                control = f"/_emulator/chats/{self.upstream_id}/agent/"
                verb, payload = {
                    "join": ("join", {"greet": True}),
                    "typing_on": ("typing", {"typing": True}),
                    "typing_off": ("typing", {"typing": False}),
                    "say_typed": ("say", {"text": step.text}),
                    "say_canned": ("say", {"text": step.text}),
                }[step.action]
                status, _ = await self.agent.request("POST", control + verb, payload)
            if status != 200:
                self.failed_steps += 1
        except (OSError, asyncio.IncompleteReadError):
            self.failed_steps += 1


async def _open(arm: ArmSpec, k: int, emu_url: str, urls: list[str], seed: int) -> ArmChat:
    nickname = f"conv-{arm.kind}-{arm.instances}-{arm.viewers}-{k}-{seed}"
    if arm.kind == "chat-bff":
        customer_url = urls[k % len(urls)]
        ((handle, upstream_id),) = await create_many([customer_url], emu_url, [nickname])
        chat = ArmChat(
            arm,
            k,
            upstream_id,
            Connection(customer_url),
            f"/api/v2/chats/{handle}",
            Connection(emu_url),
        )
        for i in range(arm.viewers):
            url = urls[(k + i) % len(urls)]
            if i % 2 == 0:
                seen = chat.seen_by(i)

                def on_event(event: SseEvent, seen: Any = seen) -> None:
                    seen(json.loads(event.data), event.at)

                chat.viewers.append(Viewer([url], handle, on_message=on_event).start())
            else:
                chat.viewers.append(AppReader(url, handle, seen=chat.seen_by(i)).start())
        return chat
    upstream = Connection(emu_url)
    upstream_id = await create_upstream(upstream, nickname)
    chat = ArmChat(
        arm, k, upstream_id, upstream, f"/api/v2/chats/{upstream_id}", Connection(emu_url)
    )
    for i in range(arm.viewers):
        seen = chat.seen_by(i)
        chat.viewers.append(
            DirectPoller(
                emu_url,
                upstream_id,
                BASELINE_INTERVAL_S,
                with_state=arm.kind == "state+messages",
                on_message=lambda _chat, message, at, seen=seen: seen(message, at),
            ).start()
        )
    return chat


async def _run_conversation(
    k: int, seed: int, sizes: Sizes, emu_url: str, fleets: dict[int, list[str]]
) -> list[ArmChat]:
    await asyncio.sleep(k * sizes.stagger_s)
    script = conversation(seed, sizes.duration_s)
    chats = await asyncio.gather(
        *(_open(arm, k, emu_url, fleets.get(arm.instances, []), seed) for arm in sizes.arms)
    )
    t0 = time.monotonic()
    for step in script:
        await asyncio.sleep(max(0.0, t0 + step.at - time.monotonic()))
        await asyncio.gather(*(chat.act(step) for chat in chats))
    await asyncio.sleep(TAIL_S)
    for chat in chats:
        for viewer in chat.viewers:
            await viewer.stop()
    return list(chats)


def _classify(message: dict[str, Any]) -> str | None:
    sender = (message.get("from") or {}).get("type")
    kind, text = message.get("type"), message.get("text") or ""
    if sender == "Customer":
        return "echo" if kind == "Text" else None
    if kind == "TypingStarted" and sender == "Agent":
        return "typing"
    if kind == "Text" and text.startswith("agent "):
        return "agent"
    if kind in ("Text", "Notice"):
        return "untyped"
    return None


@dataclass
class Samples:
    agent: list[float] = field(default_factory=list)
    typing: list[float] = field(default_factory=list)
    untyped: list[float] = field(default_factory=list)
    echo: list[float] = field(default_factory=list)
    undelivered: int = 0


def _collect(chat: ArmChat, transcript: list[dict[str, Any]], final: float, into: Samples) -> None:
    for message in transcript:
        what = _classify(message)
        if what is None or "utcTime" not in message:
            continue
        index = int(message["index"])
        if what == "echo":
            sent = chat.sent_at.get(message.get("text") or "")
            at = chat.delivered[0].get(index) if chat.delivered else None
            if sent is not None:
                into.undelivered += at is None
                into.echo.append((at if at is not None else final) - sent)
            continue
        committed = message["utcTime"] / 1000
        for table in chat.delivered:
            at = table.get(index)
            into.undelivered += at is None
            getattr(into, what).append((at if at is not None else final) - committed)


def _latency(samples: list[float]) -> dict[str, Any]:
    return {
        "samples": len(samples),
        "p50_s": r(percentile(samples, 50)),
        "p99_s": r(percentile(samples, 99)),
        "max_s": r(max(samples, default=float("nan"))),
    }


async def _timeline(emulator: Connection, chat: ArmChat) -> list[str]:
    """One chat's upstream requests as "seconds operation" lines, from its first request."""
    log_entries = (await emulator.json("GET", f"/_bench/requests_for?chat={chat.upstream_id}"))[
        "requests"
    ]
    if not log_entries:
        return []
    first = log_entries[0]["at"]
    lines = []
    for entry in log_entries:
        what = (
            "POST"
            if entry["method"] == "POST"
            else "GET " + ("messages" if entry["path"].endswith("/messages") else "chat")
        )
        lines.append(f"{entry['at'] - first:7.2f} {what}")
    return lines


async def _scenario(sizes: Sizes, emu_url: str, fleets: dict[int, list[str]]) -> dict[str, Any]:
    seed = int(os.environ.get("BENCH_SEED") or random.randrange(1, 1_000_000))
    log(f"conversation: seed {seed}, {sizes.conversations} conversations x {len(sizes.arms)} arms")
    done = await asyncio.gather(
        *(
            _run_conversation(k, seed + k, sizes, emu_url, fleets)
            for k in range(sizes.conversations)
        )
    )
    final = time.time()
    emulator = Connection(emu_url)
    rows = []
    by_arm: dict[ArmSpec, Samples] = {}
    for arm in sizes.arms:
        samples = by_arm[arm] = Samples()
        reads = writes = failed = 0
        chats = [chat for conv in done for chat in conv if chat.arm == arm]
        for chat in chats:
            view = await emulator.json("GET", f"/_emulator/chats/{chat.upstream_id}")
            _collect(chat, view["transcript"], final, samples)
            entries = (await emulator.json("GET", f"/_bench/requests_for?chat={chat.upstream_id}"))[
                "requests"
            ]
            reads += sum(e["method"] == "GET" for e in entries)
            writes += 1 + sum(e["method"] == "POST" for e in entries)  # + RequestChat
            failed += chat.failed_steps
        minutes = len(chats) * sizes.duration_s / 60
        rows.append(
            {
                "arm": arm.name,
                "kind": arm.kind,
                "instances": arm.instances,
                "viewers": arm.viewers,
                "reads_per_chat_minute": r(reads / minutes, 2),
                "writes_per_chat_minute": r(writes / minutes, 2),
                "agent_text": _latency(samples.agent),
                "agent_typing_started": _latency(samples.typing),
                "untyped_agent_messages": _latency(samples.untyped),
                "echo": _latency(samples.echo),
                "undelivered": samples.undelivered,
                "failed_steps": failed,
            }
        )
    timelines = {}
    for arm in (ArmSpec("chat-bff", 1, 1), ArmSpec("state+messages", 1)):
        first = next((c for c in done[0] if c.arm == arm), None)
        if first is not None:
            timelines[arm.name] = await _timeline(emulator, first)
    await emulator.close()
    scripts = [conversation(seed + k, sizes.duration_s) for k in range(sizes.conversations)]
    return _headline(rows, by_arm) | {
        "seed": seed,
        "conversations": sizes.conversations,
        "duration_s": sizes.duration_s,
        "agent_typing_share": r(sum(map(agent_typing_share, scripts)) / len(scripts)),
        "baseline_interval_s": BASELINE_INTERVAL_S,
        "cadence": {
            name: shipped_default(name)
            for name in ("poll_read_budget", "poll_floor_s", "poll_ceiling_s")
        },
        "rows": rows,
        "timelines": timelines,
    }


def _headline(rows: list[dict[str, Any]], by_arm: dict[ArmSpec, Samples]) -> dict[str, Any]:
    def find(kind: str, viewers: int, instances: int = 0) -> dict[str, Any] | None:
        wanted = (kind, viewers, instances)
        return next((x for x in rows if (x["kind"], x["viewers"], x["instances"]) == wanted), None)

    def ratio(base: dict[str, Any] | None, ours: dict[str, Any] | None) -> float | None:
        if base is None or ours is None or not ours["reads_per_chat_minute"]:
            return None
        return r(base["reads_per_chat_minute"] / ours["reads_per_chat_minute"], 2)

    growth = {}
    for n in (1, 3):
        low, high = find("chat-bff", 1, n), find("chat-bff", 20, n)
        if low and high and low["reads_per_chat_minute"]:
            growth[str(n)] = r(high["reads_per_chat_minute"] / low["reads_per_chat_minute"] - 1, 3)
    # The headline latencies pool the arms they describe, for samples enough for a p99: agent
    # texts over the 1-viewer chat-bff arms, echoes over every chat-bff arm.
    ours = {arm: s for arm, s in by_arm.items() if arm.kind == "chat-bff"}
    agent = [x for arm, s in ours.items() if arm.viewers == 1 for x in s.agent]
    echo = [x for s in ours.values() for x in s.echo]
    return {
        "conversation_reads_ratio_1_viewer": ratio(
            find("state+messages", 1), find("chat-bff", 1, 1)
        ),
        "conversation_reads_ratio_5_viewers": ratio(
            find("state+messages", 5), find("chat-bff", 5, 3)
        ),
        "conversation_agent_p50_s": r(percentile(agent, 50)),
        "conversation_agent_p99_s": r(percentile(agent, 99)),
        "conversation_echo_p99_ms": r(percentile(echo, 99) * 1000, 1),
        "conversation_reads_growth_1_to_20_viewers": growth,
        "headline_samples": {"agent_text": len(agent), "echo": len(echo)},
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with servers() as started:
        emu = start_emulator(scripted=False, log_limit=200_000)
        started.append(emu)
        fleets: dict[int, list[str]] = {}
        counts = sorted({a.instances for a in sizes.arms if a.kind == "chat-bff"})
        redis = None
        for n in counts:
            if n == 1:
                bff = start_bff(emu.url)
                started.append(bff)
                fleets[1] = [bff.url]
                continue
            if redis is None:
                redis = RedisServer().start()
                started.append(redis)
            fleets[n] = []
            for _ in range(n):
                bff = start_bff(emu.url, BFF_REDIS_URL=redis.url)
                started.append(bff)
                fleets[n].append(bff.url)
        return run_loop(_scenario(sizes, emu.url, fleets))


if __name__ == "__main__":
    scenario_main("conversation", run)
