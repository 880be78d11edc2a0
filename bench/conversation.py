"""Conversation: real chats at human pace (`conversation_model`: typed, canned and bot
replies, a queue wait, the agent ending the chat), replayed step for step in every arm at once,
so all arms see the same seeded conversations and the same machine noise.

Arms: chat-bff on 1 and on 3 instances (one Redis) with 1, 5 and 20 viewers per chat (SSE tabs
and long-polling apps, alternating; the first viewer is the customer's own tab), chat-bff at
other read budgets (1 viewer, when the build has the setting), and baselines where every viewer
polls the upstream itself: (a) chat state and messages, the upstream's documented way, every
1, 2, 3, 5 and 8 s (1 viewer; the frontier) and every 3 s with 5 viewers; (b) messages only,
every 3 s. The customer's typing notices and sends go through chat-bff (directly upstream for
the baselines); the agent and the bot act through the emulator's control API (its scripted
agent is off). A third of the conversations start with a bot.

The figures (per class, per arm, the oracle and the frontier) are `conversation_figures`'s.
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
    run_loop,
    scenario_main,
    servers,
    start_bff,
    start_emulator,
)
from bench.conversation_figures import ChatRecord, figures, schedule_settings
from bench.conversation_model import MODEL, Model, Step, is_bot_first, run_scripts
from bench.wire import Connection, SseEvent, Viewer

ArmKind = Literal["chat-bff", "state+messages", "messages"]
BASELINE_INTERVAL_S = 3.0
FRONTIER_INTERVALS_S = (1.0, 2.0, 3.0, 5.0, 8.0)
OTHER_BUDGETS = (20, 40)  # reads per chat-minute, besides the shipped default
TAIL_S = 8.0  # after the agent left, the longest a conversation's viewers wait for it


@dataclass(frozen=True)
class ArmSpec:
    kind: ArmKind
    viewers: int
    instances: int = 0
    interval_s: float = BASELINE_INTERVAL_S  # baselines
    budget: int | None = None  # chat-bff: BFF_POLL_READ_BUDGET, None for the shipped default

    @property
    def name(self) -> str:
        if self.kind == "chat-bff":
            plural = "s" if self.instances > 1 else ""
            budget = "" if self.budget is None else f", budget {self.budget}"
            return f"chat-bff, {self.instances} instance{plural}, {self.viewers} viewers{budget}"
        return f"baseline {self.kind} every {self.interval_s:g} s, {self.viewers} viewers"

    @property
    def fleet(self) -> tuple[int, int | None]:
        return self.instances, self.budget


@dataclass(frozen=True)
class Sizes:
    conversations: int
    model: Model
    stagger_s: float
    arms: tuple[ArmSpec, ...]


def _budgets_supported() -> bool:
    return "poll_read_budget" in schedule_settings()


def _arms(quick: bool) -> tuple[ArmSpec, ...]:
    budgets = OTHER_BUDGETS if _budgets_supported() else ()
    if quick:
        return (
            ArmSpec("chat-bff", 1, 1),
            ArmSpec("chat-bff", 2, 3),
            *(ArmSpec("chat-bff", 1, 1, budget=b) for b in budgets[:1]),
            *(ArmSpec("state+messages", 1, interval_s=i) for i in (1.0, BASELINE_INTERVAL_S)),
            ArmSpec("messages", 1),
        )
    return (
        *(ArmSpec("chat-bff", v, n) for n in (1, 3) for v in (1, 5, 20)),
        *(ArmSpec("chat-bff", 1, 1, budget=b) for b in budgets),
        *(ArmSpec("state+messages", 1, interval_s=i) for i in FRONTIER_INTERVALS_S),
        ArmSpec("state+messages", 5),
        ArmSpec("messages", 1),
    )


def sizes(quick: bool) -> Sizes:
    if quick:
        tiny = Model(
            queue_wait_s=(2.0, 6.0),
            bot_turns=(1, 1),
            typing_after_s=(2.0, 4.0),
            typing_for_s=(1.0, 3.0),
            canned_after_s=(1.0, 4.0),
            customer_after_s=(1.0, 3.0),
            customer_typing_s=(1.0, 3.0),
            talk_s=12.0,
            end_after_s=(1.0, 3.0),
        )
        return Sizes(conversations=2, model=tiny, stagger_s=0.0, arms=_arms(True))
    return Sizes(conversations=12, model=MODEL, stagger_s=1.0, arms=_arms(False))


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
    left_index: int | None = None  # the agent's ParticipantLeft

    def seen_by(self, viewer: int) -> Callable[[dict[str, Any], float], None]:
        while len(self.delivered) <= viewer:
            self.delivered.append({})
        table = self.delivered[viewer]

        def seen(message: dict[str, Any], at: float) -> None:
            table.setdefault(int(message["index"]), at)

        return seen

    def all_saw_the_end(self) -> bool:
        return self.left_index is not None and all(
            self.left_index in table for table in self.delivered
        )

    async def act(self, step: Step) -> None:
        try:
            if step.actor == "customer":
                body: dict[str, Any] = {"operationName": step.action}
                if step.action == "SendMessage":
                    body["text"] = step.text
                    self.sent_at[step.text] = time.time()
                headers = UPSTREAM_HEADERS if self.arm.kind != "chat-bff" else None
                status, _ = await self.customer.request("POST", self.path, body, headers=headers)
            elif step.actor == "bot":
                payload = {"chat": self.upstream_id, "text": step.text}
                status, _ = await self.agent.request("POST", "/_bench/bot_say", payload)
            else:
                control = f"/_emulator/chats/{self.upstream_id}/agent/"
                verb, body = {
                    "join": ("join", {"greet": True}),
                    "typing_on": ("typing", {"typing": True}),
                    "typing_off": ("typing", {"typing": False}),
                    "say": ("say", {"text": step.text}),
                    "leave": ("leave", None),
                }[step.action]
                status, answer = await self.agent.request("POST", control + verb, body)
                if step.action == "leave" and status == 200:
                    self.left_index = int(json.loads(answer)["index"])
            if status != 200:
                self.failed_steps += 1
        except (OSError, asyncio.IncompleteReadError):
            self.failed_steps += 1

    def record(self, script: list[Step]) -> ChatRecord:
        return ChatRecord(
            self.arm.name,
            self.upstream_id,
            script,
            self.delivered,
            self.sent_at,
            self.failed_steps,
        )


async def _open(arm: ArmSpec, k: int, emu_url: str, urls: list[str], seed: int) -> ArmChat:
    nickname = f"conv-{arm.name}-{k}-{seed}".replace(" ", "")
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
                arm.interval_s,
                with_state=arm.kind == "state+messages",
                on_message=lambda _chat, message, at, seen=seen: seen(message, at),
            ).start()
        )
    return chat


async def _run_conversation(
    k: int,
    script: list[Step],
    seed: int,
    sizes: Sizes,
    emu_url: str,
    fleets: dict[tuple[int, int | None], list[str]],
) -> list[ArmChat]:
    await asyncio.sleep(k * sizes.stagger_s)
    chats = await asyncio.gather(
        *(_open(arm, k, emu_url, fleets.get(arm.fleet, []), seed) for arm in sizes.arms)
    )
    t0 = time.monotonic()
    for step in script:
        await asyncio.sleep(max(0.0, t0 + step.at - time.monotonic()))
        await asyncio.gather(*(chat.act(step) for chat in chats))
    # A client stops when it has seen the chat end: so do the viewers, within the tail.
    for _ in range(int(TAIL_S / 0.1)):
        if all(c.all_saw_the_end() for c in chats):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    for chat in chats:
        for viewer in chat.viewers:
            await viewer.stop()
    return list(chats)


async def _requests(emulator: Connection, upstream_id: str) -> list[dict[str, Any]]:
    answer = await emulator.json("GET", f"/_bench/requests_for?chat={upstream_id}")
    entries: list[dict[str, Any]] = answer["requests"]
    return entries


async def _scenario(
    sizes: Sizes, emu_url: str, fleets: dict[tuple[int, int | None], list[str]]
) -> dict[str, Any]:
    seed = int(os.environ.get("BENCH_SEED") or random.randrange(1, 1_000_000))
    log(f"conversation: seed {seed}, {sizes.conversations} conversations x {len(sizes.arms)} arms")
    scripts = run_scripts(seed, sizes.conversations, sizes.model)
    done = await asyncio.gather(
        *(
            _run_conversation(k, scripts[k], seed + k, sizes, emu_url, fleets)
            for k in range(sizes.conversations)
        )
    )
    final = time.time()
    emulator = Connection(emu_url)
    records = []
    for k, conv in enumerate(done):
        for chat in conv:
            record = chat.record(scripts[k])
            record.transcript = (
                await emulator.json("GET", f"/_emulator/chats/{chat.upstream_id}")
            )["transcript"]
            record.requests = await _requests(emulator, chat.upstream_id)
            records.append(record)
    await emulator.close()
    log("conversation: figures and the oracle")
    return figures(
        arms=[
            (arm.name, arm.kind, arm.instances, arm.viewers, arm.interval_s, arm.budget)
            for arm in sizes.arms
        ],
        records=records,
        model=sizes.model,
        bot_first=[is_bot_first(k) for k in range(sizes.conversations)],
        final=final,
    ) | {
        "seed": seed,
        "conversations": sizes.conversations,
        "baseline_interval_s": BASELINE_INTERVAL_S,
        "schedule": schedule_settings(),
    }


def run(quick: bool) -> dict[str, Any]:
    chosen = sizes(quick)
    with servers() as started:
        emu = start_emulator(scripted=False, log_limit=400_000)
        started.append(emu)
        fleets = sorted(
            {a.fleet for a in chosen.arms if a.kind == "chat-bff"}, key=lambda x: (x[0], x[1] or 0)
        )
        redis = None
        if any(n > 1 for n, _ in fleets):
            redis = RedisServer().start()
            started.append(redis)
        wanted: list[tuple[tuple[int, int | None], dict[str, str]]] = []
        for n, budget in fleets:
            extra = {} if budget is None else {"BFF_POLL_READ_BUDGET": str(budget)}
            if n > 1 and redis is not None:
                extra["BFF_REDIS_URL"] = redis.url
            wanted += [((n, budget), extra)] * n
        urls: dict[tuple[int, int | None], list[str]] = {}
        for fleet, extra in wanted:
            bff = start_bff(emu.url, **extra)
            started.append(bff)
            urls.setdefault(fleet, []).append(bff.url)
        return run_loop(_scenario(chosen, emu.url, urls))


if __name__ == "__main__":
    scenario_main("conversation", run)
