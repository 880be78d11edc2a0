"""Upstream load: requests per watched chat with 1, 5 and 20 viewers on 1 and 3 instances,
against every viewer polling the upstream directly (state + messages every 3 s, the
platform's sample-client interval).

All arms run at once against one emulator, each on its own chats, so they share the same
machine noise; the emulator counts requests per chat (`/_emulator/stats` by_chat), diffed over
a fixed window. Two workloads:

- lively: the agent posts at random moments (mean gap 8 s), so the chat stays lively and
  chat-bff polls at most BFF_POLL_CEILING_S apart (its default);
- quiet: nobody talks after the agent's greeting; counted once the cadence has settled at the
  idle interval (after the lively window plus the stretch window).

Viewers are browsers (SSE streams); every fifth is an app long-polling cached messages.
Viewers of a chat are spread round-robin over the instances.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.core.schedule import QUIET_RAMP_S
from bench.agents import (
    AppReader,
    DirectPoller,
    Talker,
    create_many,
    create_many_upstream,
)
from bench.common import (
    RedisServer,
    log,
    r,
    run_loop,
    scenario_main,
    servers,
    shipped_default,
    start_bff,
    start_emulator,
)
from bench.wire import Connection, Viewer

VIEWERS = (1, 5, 20)
BASELINE_INTERVAL_S = 3.0
# chat-bff runs with its shipped cadence (app/config/ defaults).
POLL_INTERVAL_S = float(shipped_default("poll_ceiling_s"))
LIVELY_GAP_S = 8.0
# A quiet chat's gaps stretch to the ceiling over QUIET_RAMP_S after its last message
# (app/core/schedule.py); counted after that.
QUIET_SETTLE_S = 2 * QUIET_RAMP_S + 5.0


@dataclass
class Sizes:
    chats_per_arm: int
    window_s: float
    warmup_s: float
    quiet: bool


FULL = Sizes(chats_per_arm=5, window_s=70.0, warmup_s=8.0, quiet=True)
QUICK = Sizes(chats_per_arm=1, window_s=10.0, warmup_s=3.0, quiet=False)


@dataclass
class Arm:
    name: str  # "1 instance", "3 instances", "baseline"
    viewers: int
    workload: str
    chats: list[str]  # upstream ids


async def _scenario(sizes: Sizes, emu_url: str, single: str, fleet: list[str]) -> dict[str, Any]:
    emulator = Connection(emu_url)
    bffs = {"1 instance": [single], "3 instances": fleet}
    workloads = ["lively"] + (["quiet"] if sizes.quiet else [])
    arms = [
        Arm(name, viewers, workload, [])
        for workload in workloads
        for viewers in VIEWERS
        for name in ("1 instance", "3 instances", "baseline")
    ]
    clients: list[Any] = []
    per_arm = sizes.chats_per_arm
    for arm in arms:
        if arm.name != "baseline":
            continue
        nicknames = [f"{arm.workload}-{arm.name}-{arm.viewers}-{k}" for k in range(per_arm)]
        arm.chats = await create_many_upstream(emu_url, nicknames)
        for chat in arm.chats:
            for _ in range(arm.viewers):
                # Each direct poller starts at a random phase of its interval.
                clients.append(DirectPoller(emu_url, chat, BASELINE_INTERVAL_S).start())
    # A chat-bff chat polls from the moment it is created: the k-th chat of every arm is
    # created k/per_arm of an interval after the first, so an arm's chats spread their polls
    # evenly over the interval as the baseline's random phases do. (Created all at once, an
    # arm's chats would poll in step, and a window count would be off by up to one request
    # for all of them together.)
    for k in range(per_arm):
        for arm in arms:
            if arm.name == "baseline":
                continue
            urls = bffs[arm.name]
            nickname = f"{arm.workload}-{arm.name}-{arm.viewers}-{k}"
            ((handle, chat),) = await create_many(urls, emu_url, [nickname])
            arm.chats.append(chat)
            for i in range(arm.viewers):
                url = urls[i % len(urls)]
                if i % 5 == 4:
                    clients.append(AppReader(url, handle).start())
                else:
                    clients.append(Viewer([url], handle).start())
        await asyncio.sleep(POLL_INTERVAL_S / per_arm)
    log(f"upstream_load: {sum(len(a.chats) for a in arms)} chats, {len(clients)} viewers and apps")
    lively = [c for a in arms if a.workload == "lively" for c in a.chats]
    talker = Talker(emu_url, lively, LIVELY_GAP_S).start()

    async def counts() -> tuple[float, Counter[str]]:
        stats = await emulator.json("GET", "/_emulator/stats")
        return time.monotonic(), Counter(stats["by_chat"])

    t0 = time.monotonic()
    await asyncio.sleep(sizes.warmup_s)
    lively_start = await counts()
    quiet_start = None
    if sizes.quiet:
        await asyncio.sleep(max(0.0, t0 + QUIET_SETTLE_S - time.monotonic()))
        quiet_start = await counts()
    await asyncio.sleep(max(0.0, lively_start[0] + sizes.window_s - time.monotonic()))
    end = await counts()
    await talker.stop()
    for client in clients:
        await client.stop()

    rows = []
    for arm in arms:
        start = lively_start if arm.workload == "lively" else quiet_start
        assert start is not None
        seconds = end[0] - start[0]
        total = sum(end[1][c] - start[1][c] for c in arm.chats)
        per_chat_s = total / len(arm.chats) / seconds
        rows.append(
            {
                "workload": arm.workload,
                "arm": arm.name,
                "viewers": arm.viewers,
                "window_s": r(seconds, 1),
                "requests_per_chat_per_s": r(per_chat_s),
                "requests_per_poll_interval": r(per_chat_s * POLL_INTERVAL_S),
            }
        )
    by = {(x["workload"], x["arm"], x["viewers"]): x for x in rows}
    for row in rows:
        base = by[(row["workload"], "baseline", row["viewers"])]["requests_per_chat_per_s"]
        row["baseline_over_ours"] = (
            r(base / row["requests_per_chat_per_s"], 2) if row["arm"] != "baseline" else 1.0
        )
    headline = by[("lively", "3 instances", 5)]["baseline_over_ours"]
    result: dict[str, Any] = {
        "upstream_requests_ratio": headline,
        "poll_interval_s": POLL_INTERVAL_S,
        "baseline_interval_s": BASELINE_INTERVAL_S,
        "lively_mean_gap_s": LIVELY_GAP_S,
        "agent_messages": len(talker.said),
        "rows": rows,
    }
    if sizes.quiet:
        result["quiet_ratio_5_viewers_3_instances"] = by[("quiet", "3 instances", 5)][
            "baseline_over_ours"
        ]
    return result


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with servers() as started:
        # The scripted agent joins and greets after 1 s and answers nothing (nobody sends).
        emu = start_emulator(join_delay=1.0)
        started.append(emu)
        redis = RedisServer().start()
        started.append(redis)
        single = start_bff(emu.url)
        started.append(single)
        fleet = []
        for _ in range(3):
            fleet.append(start_bff(emu.url, BFF_REDIS_URL=redis.url))
            started.append(fleet[-1])
        return run_loop(_scenario(sizes, emu.url, single.url, [s.url for s in fleet]))


if __name__ == "__main__":
    scenario_main("upstream_load", run)
