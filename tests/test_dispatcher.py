"""The delivery workers in one process, on the in-process bus, against a real receiver on
loopback: dead letters at the age limit, Retry-After (the one parser: seconds, an HTTP date,
nonsense such as `²`), an exception inside one delivery, a crashing worker, a kind whose
webhook is not configured any more."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import time

import pytest

from app.bus import MemoryBus
from app.bus.hooks import ClaimBatch, OutboxQuota
from app.clock import SystemClock
from app.metrics import Metrics
from app.outbox.webhooks import DeliveryTuning, Dispatcher, WebhookTarget, envelope, parse_secret
from app.supervision import Backoff
from tests.webhook_receiver import Receiver

FAST = DeliveryTuning(timeout_s=2, retry_min_s=0.05, retry_max_s=0.2, poll_s=0.05)
QUOTA = OutboxQuota(max_items=100, max_bytes=1 << 20)


def target(receiver: Receiver, max_age_s: float | None = None) -> WebhookTarget:
    return WebhookTarget(receiver.url, (parse_secret(receiver.secret),), QUOTA, max_age_s)


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def wait_for(receiver: Receiver, condition: object, timeout_s: float = 10) -> None:
    await asyncio.to_thread(receiver.wait_for, condition, timeout_s)  # type: ignore[arg-type]


async def test_a_push_notice_is_dead_lettered_at_its_age_limit() -> None:
    bus, metrics = MemoryBus(), Metrics()
    with Receiver() as receiver:
        receiver.answers[:] = [500] * 1000
        worker = Dispatcher(
            bus=bus, targets={"push": target(receiver, 1.0)}, tuning=FAST, observer=metrics
        )
        worker.start()
        try:
            await worker.enqueue("push:c:1", envelope("push", "chat.message", {"n": 1}))
            await asyncio.sleep(1.6)
            attempts = len(receiver.all())
            assert attempts >= 3  # retried meanwhile
            assert (await bus.outbox_held("push")).items == 0  # then dead-lettered
            assert counted(metrics, "bff_outbox_dead_letters_total", kind="push", reason="max_age")
            await asyncio.sleep(0.5)
            assert len(receiver.all()) == attempts
        finally:
            await worker.aclose()


async def test_a_left_message_is_dead_lettered_at_its_age_limit() -> None:
    bus, metrics = MemoryBus(), Metrics()
    down = Receiver()  # never started: connections refused
    worker = Dispatcher(
        bus=bus, targets={"offline": target(down, 0.5)}, tuning=FAST, observer=metrics
    )
    worker.start()
    try:
        await worker.enqueue("offline:1", envelope("offline", "offline.message", {"t": 1}))
        assert (await bus.outbox_held("offline")).items == 1
        await asyncio.sleep(1.2)
        assert (await bus.outbox_held("offline")).bytes == 0
        dead = counted(metrics, "bff_outbox_dead_letters_total", kind="offline", reason="max_age")
        assert dead == 1
        assert counted(metrics, "bff_webhook_deliveries_total", kind="offline", outcome="failed")
    finally:
        await worker.aclose()


async def test_retry_after_is_honoured_up_to_the_maximum_wait() -> None:
    bus = MemoryBus()
    tuning = DeliveryTuning(timeout_s=2, retry_min_s=0.05, retry_max_s=5, poll_s=0.05)
    with Receiver() as receiver:
        receiver.answers[:] = [(503, {"Retry-After": "1"})]
        worker = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=tuning)
        worker.start()
        try:
            await worker.enqueue("offline:1", envelope("offline", "offline.message", {}))
            await wait_for(receiver, lambda ds: len(ds) == 2)
            first, second = receiver.all()
            assert (first.status, second.status) == (503, 200)
            assert second.at - first.at >= 0.95
        finally:
            await worker.aclose()


async def test_odd_retry_after_values_are_retries_and_later_items_still_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`²` is a digit to str.isdigit() and no number to float(): it used to raise inside the
    worker and end it for good. Now every Retry-After goes through the one parser."""
    bus = MemoryBus()
    tuning = DeliveryTuning(timeout_s=2, retry_min_s=0.05, retry_max_s=5, poll_s=0.05)
    caplog.set_level(logging.INFO, logger="chat_bff.webhooks")
    with Receiver() as receiver:
        in_two_s = email.utils.formatdate(time.time() + 2, usegmt=True)
        receiver.answers[:] = [
            (503, {"Retry-After": "\u00b2"}),
            (503, {"Retry-After": in_two_s}),
            (429, {"Retry-After": "soon, maybe"}),
        ]
        worker = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=tuning)
        worker.start()
        try:
            await worker.enqueue("offline:a", envelope("offline", "offline.message", {"n": "a"}))
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 1)
            tries = receiver.all()
            assert [d.status for d in tries] == [503, 503, 429, 200]
            assert len({d.msg_id for d in tries}) == 1
            # The HTTP date asked for 1 to 2 s (it has whole seconds), and was given them.
            assert tries[2].at - tries[1].at >= 0.9
            for n in ("b", "c"):
                notice = envelope("offline", "offline.message", {"n": n})
                await worker.enqueue(f"offline:{n}", notice)
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 3)
            # b and c may be claimed in one batch, whose requests are in flight together.
            delivered = [d.json()["data"]["n"] for d in receiver.accepted()]
            assert delivered[0] == "a" and sorted(delivered[1:]) == ["b", "c"], delivered
        finally:
            await worker.aclose()
    assert not [r for r in caplog.records if "crashed" in r.getMessage()]


class FailingClock(SystemClock):
    """The real clock, but its wall time raises on its `fail_at`-th reading: an exception from
    inside one delivery, from a place the worker does not guard, as a bug would raise it."""

    def __init__(self, fail_at: int) -> None:
        self.reads = 0
        self.fail_at = fail_at

    def time(self) -> float:
        self.reads += 1
        if self.reads == self.fail_at:
            raise ZeroDivisionError("injected fault at https://receiver.example/hook")
        return super().time()


async def test_an_exception_inside_one_delivery_is_a_retry_of_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryBus()
    caplog.set_level(logging.INFO, logger="chat_bff.webhooks")
    with Receiver() as receiver:
        worker = Dispatcher(
            bus=bus, targets={"offline": target(receiver)}, tuning=FAST, clock=FailingClock(1)
        )
        worker.start()
        try:
            await worker.enqueue("offline:x", envelope("offline", "offline.message", {"n": 1}))
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 1)
            await worker.enqueue("offline:y", envelope("offline", "offline.message", {"n": 2}))
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 2)
        finally:
            await worker.aclose()
    failed = [r.getMessage() for r in caplog.records if "unexpectedly" in r.getMessage()]
    assert len(failed) == 1
    assert "ZeroDivisionError at" in failed[0] and "retried" in failed[0]
    assert "receiver.example" not in caplog.text and receiver.url not in caplog.text


class FlakyOutbox(MemoryBus):
    """A memory bus whose claims raise something unforeseen (not a bus error) `left` times:
    fault injection into the worker's own loop."""

    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch:
        if self.left > 0:
            self.left -= 1
            raise RuntimeError("injected claim fault")
        return await super().outbox_claim(kind, limit, claim_s)


async def test_a_crashed_worker_is_logged_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FlakyOutbox(left=2)
    caplog.set_level(logging.ERROR, logger="chat_bff.webhooks")
    tuning = dataclasses.replace(FAST, restarts=Backoff(first_s=0.1, max_s=0.4))
    with Receiver() as receiver:
        worker = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=tuning)
        worker.start()
        try:
            await worker.enqueue("offline:1", envelope("offline", "offline.message", {"n": 1}))
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 1)
        finally:
            await worker.aclose()
    crashed = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashed) == 2, crashed
    assert crashed[0].startswith("webhook worker of offline notices crashed (RuntimeError at")
    assert "injected claim fault" not in caplog.text


async def test_kinds_are_delivered_independently_and_an_unconfigured_kind_waits() -> None:
    bus = MemoryBus()
    with Receiver() as receiver:
        # Stored while the offline webhook was configured; then a restart without it.
        earlier = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=FAST)
        await earlier.enqueue("offline:2", envelope("offline", "offline.message", {"t": 2}))
        await earlier.aclose()
        lonely = Dispatcher(bus=bus, targets={"push": target(receiver)}, tuning=FAST)
        lonely.start()
        await lonely.enqueue("push:c:1", envelope("push", "chat.message", {"t": 1}))
        await wait_for(receiver, lambda ds: len(receiver.accepted()) == 1)
        await asyncio.sleep(0.3)
        await lonely.aclose()
        assert [d.json()["data"] for d in receiver.all()] == [{"t": 1}]
        assert (await bus.outbox_held("offline")).items == 1
        with pytest.raises(ValueError, match="offline"):
            await lonely.enqueue("offline:3", envelope("offline", "offline.message", {}))
        # Configured again (a restart with the setting back): delivered.
        worker = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=FAST)
        worker.start()
        try:
            await wait_for(receiver, lambda ds: len(receiver.accepted()) == 2)
            assert receiver.accepted()[1].json()["data"] == {"t": 2}
        finally:
            await worker.aclose()
