"""chat-bff's pollers in this process on a fake clock: the runtime `build_runtime` wires (the
real registry, service, pollers and upstream client on a memory bus), the emulator reached
through `httpx.ASGITransport`, and the upstream's own view of when it was polled, in fake
seconds. Nothing here is wired by hand: a change to the wiring reaches these tests too.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from app.build import build_runtime
from app.bus import MemoryBus
from app.config.settings import Settings
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.models import ChatRef
from app.runtime import Runtime
from tests.unit.clock import FakeClock

CENTER = "cc-poller-tests"


@dataclass
class Polled:
    """The emulator's ASGI app, noting the fake time of every request it is sent."""

    app: Any
    clock: FakeClock
    seen: list[tuple[float, str, str]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((self.clock.monotonic(), scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Polling:
    clock: FakeClock
    runtime: Runtime
    emulator: Emulator
    bus: MemoryBus
    upstream: Polled

    def polls(self, upstream_id: str) -> list[float]:
        """When the upstream was asked for one chat's messages (fake time)."""
        path = f"/api/v2/chats/{upstream_id}/messages"
        return [at for at, method, p in self.upstream.seen if method == "GET" and p == path]

    def polls_since(self, upstream_id: str, since: float) -> list[float]:
        return [at for at in self.polls(upstream_id) if at >= since]

    def gap_around(self, upstream_id: str, at: float) -> tuple[float, float]:
        """(the last poll before `at`, the first after): where something posted at `at`
        waited to be seen."""
        times = self.polls(upstream_id)
        return max(t for t in times if t <= at), min(t for t in times if t > at)

    async def count_polls(self, upstream_id: str, seconds: float) -> int:
        start = self.clock.monotonic()
        await self.clock.advance(seconds)
        return len(self.polls_since(upstream_id, start))

    async def open_chat(self, *, join: bool = True) -> ChatRef:
        ref = await self.runtime.service.create("Chris", "Where is my order?")
        if join:
            await self.emulator.agent_join(ref.upstream_id)
        return ref


@asynccontextmanager
async def polling(**settings: Any) -> AsyncIterator[Polling]:
    """The runtime started as `create_app`'s lifespan starts it, on a fake clock and a seeded
    random source; `settings` over the defaults (as `BFF_*` would)."""
    clock = FakeClock()
    emulator = Emulator(
        EmulatorConfig(contact_center_id=CENTER, scripted_agent=False, idle_disconnect_s=0)
    )
    upstream = Polled(create_emulator_app(emulator), clock)
    bus = MemoryBus()
    config = Settings(
        upstream_url="http://emulator.local",
        contact_center_id=SecretStr(CENTER),
        secret_key=SecretStr("p" * 40),
        **settings,
    )
    runtime = build_runtime(
        config,
        upstream_transport=httpx.ASGITransport(app=upstream),
        bus=bus,
        clock=clock,
        rand=random.Random(20).random,
    )
    runtime.start()
    try:
        yield Polling(clock, runtime, emulator, bus, upstream)
    finally:
        await runtime.aclose()
        await emulator.aclose()
