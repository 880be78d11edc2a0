"""One chat identity from the route down: the registry polls the `ChatRef` it is given, and
opens a handle only for a chat another instance noted on the bus (by its handle), through the
`resolve` it was handed, after winning the lease. In one process: a real memory bus and the
emulator reached in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from app.bus import MemoryBus
from app.core.handles import HandleCodec
from app.core.poller import PollerTuning
from app.core.registry import Keepalive, PollerRegistry
from app.core.schedule import Budget
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.models import ChatRef
from app.upstream.client import UpstreamClient

CENTER = "identity-center"


@dataclass
class Setup:
    upstream: UpstreamClient
    bus: MemoryBus
    codec: HandleCodec
    registry: PollerRegistry
    opened: list[str]  # every handle the registry had resolved

    async def new_chat(self) -> ChatRef:
        created = await self.upstream.request_chat("Chris", "help")
        return self.codec.issue(created.upstream_id)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    emulator = Emulator(EmulatorConfig(contact_center_id=CENTER, idle_disconnect_s=0))
    upstream = UpstreamClient(
        "http://emulator.local",
        SecretStr(CENTER),
        transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
    )
    bus = MemoryBus()
    codec = HandleCodec([b"i" * 32])
    opened: list[str] = []

    def resolve(handle: str) -> ChatRef:
        opened.append(handle)
        return codec.resolve(handle)

    registry = PollerRegistry(
        upstream=upstream,
        bus=bus,
        resolve=resolve,
        tuning=PollerTuning(budget=Budget(ceiling_s=2.0, keepalive_s=2.0)),
        keepalive=Keepalive(background_s=30, unread_s=30, per_client=10),
    )
    try:
        yield Setup(upstream, bus, codec, registry, opened)
    finally:
        await registry.drain()
        await upstream.aclose()
        await bus.aclose()
        await emulator.aclose()


async def test_the_chat_given_is_polled_without_opening_its_handle(setup: Setup) -> None:
    ref = await setup.new_chat()
    await setup.registry.interest(ref)
    assert ref.key in setup.registry.held
    assert setup.opened == []


async def test_a_chat_noted_elsewhere_is_opened_once_its_lease_is_won(setup: Setup) -> None:
    ref = await setup.new_chat()
    # Another instance's interest: on the bus, by handle only.
    await setup.bus.note_interest(ref.key, ref.handle, 30)
    await setup.registry.sweep()
    assert ref.key in setup.registry.held
    assert setup.opened == [ref.handle]


async def test_a_handle_noted_under_another_chat_is_not_polled(setup: Setup) -> None:
    ref, other = await setup.new_chat(), await setup.new_chat()
    await setup.bus.note_interest(other.key, ref.handle, 30)
    await setup.registry.sweep()
    assert setup.registry.held == frozenset()
    assert setup.opened == [ref.handle]
    # The lease it took to find out is free again.
    fence = await setup.bus.acquire(other.key, 1)
    assert fence is not None
    await setup.bus.release(fence)
