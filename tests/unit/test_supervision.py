"""A poller that crashes on something nobody foresaw is logged with its cause, shown to the
chat's viewers as `degraded`, and restarted with backoff under the same lease; the chat keeps
being polled. In one process: a real memory bus, the emulator reached in-process, and a
fault injected through the upstream client's own metrics hook. The restart delays (shared
with the webhook workers, `app.supervision`) as a table."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from pydantic import SecretStr

from app.bus import MemoryBus
from app.core.handles import HandleCodec
from app.core.poller import PollerTuning
from app.core.registry import Keepalive, PollerRegistry
from app.core.schedule import Budget
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.events import EventKind
from app.supervision import Backoff, restart_delay
from app.upstream.client import UpstreamClient

CENTER = "supervision-center"


class Crashes:
    """A metrics hook that raises on the next `left` GetMessages calls: an exception from a
    place the poll loop does not guard, like a bug would be."""

    def __init__(self) -> None:
        self.left = 0

    def __call__(self, operation: str, outcome: str, seconds: float) -> None:
        if operation == "GetMessages" and self.left > 0:
            self.left -= 1
            raise RuntimeError("injected fault")


async def test_a_crashed_poller_is_logged_degraded_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = Emulator(
        EmulatorConfig(contact_center_id=CENTER, agent_join_delay_s=0.2, idle_disconnect_s=0)
    )
    crashes = Crashes()
    upstream = UpstreamClient(
        "http://emulator.local",
        SecretStr(CENTER),
        transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
        observe=crashes,
    )
    bus = MemoryBus()
    codec = HandleCodec([b"s" * 32])
    registry = PollerRegistry(
        upstream=upstream,
        bus=bus,
        resolve=codec.resolve,
        tuning=PollerTuning(
            Budget(
                reads_per_min=600, floor_s=0.05, ceiling_s=0.2, keepalive_s=1, backoff_max_s=0.5
            ),
            lease_ttl_s=1.0,
        ),
        keepalive=Keepalive(background_s=30, unread_s=30, per_client=10),
        restarts=Backoff(first_s=0.2, max_s=30.0),
    )
    registry.start()
    try:
        created = await upstream.request_chat("Chris", "help")
        ref = codec.issue(created.upstream_id)
        key = ref.key
        async with bus.subscribe(key) as events:
            crashes.left = 3
            caplog.set_level(logging.ERROR, logger="chat_bff.registry")
            await registry.interest(ref)
            statuses: list[str] = []
            messages = 0
            async with asyncio.timeout(15):
                async for event in events:
                    if event.kind is EventKind.STATUS:
                        statuses.append(event.data["upstream"])
                    if event.kind is EventKind.MESSAGE:
                        messages += 1
                    assert key in registry.held, "the crashed poller's chat was let go"
                    if statuses[-1:] == ["ok"] and messages and crashes.left == 0:
                        break
        assert statuses[:2] == ["degraded", "ok"]
        crashed = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
        assert len(crashed) == 3, crashed
        assert "RuntimeError at" in crashed[0]
        assert "injected fault" not in crashed[0], "an exception's message may quote anyone"
    finally:
        await registry.drain()
        await upstream.aclose()
        await bus.aclose()
        await emulator.aclose()


@pytest.mark.parametrize(
    ("crashes", "jitter", "expected"),
    [
        (1, 0.0, 0.5),
        (1, 0.999, 0.9995),
        (2, 0.0, 1.0),
        (3, 0.5, 3.0),
        (6, 0.0, 15.0),  # 32 capped at 30, half of it random
        (10_000, 0.0, 15.0),
        (0, 0.0, 0.5),
    ],
)
def test_restart_delays_double_up_to_the_longest(
    crashes: int, jitter: float, expected: float
) -> None:
    assert restart_delay(crashes, Backoff(1.0, 30.0), jitter) == pytest.approx(expected)
