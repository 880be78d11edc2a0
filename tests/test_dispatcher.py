"""The delivery worker in one process, on the in-process bus, against a real receiver on
loopback: give-up age, Retry-After, a webhook that is not configured any more."""

from __future__ import annotations

import asyncio

from app.bus import MemoryBus
from app.webhooks import DeliveryTuning, Dispatcher, WebhookTarget, envelope, parse_secret
from tests.webhook_receiver import Receiver

FAST = DeliveryTuning(timeout_s=2, retry_min_s=0.05, retry_max_s=0.2, poll_s=0.05)


def target(receiver: Receiver, max_age_s: float | None = None) -> WebhookTarget:
    return WebhookTarget(receiver.url, (parse_secret(receiver.secret),), max_age_s=max_age_s)


async def test_a_push_notice_is_given_up_at_its_age_limit() -> None:
    bus = MemoryBus()
    with Receiver() as receiver:
        receiver.answers[:] = [500] * 1000
        worker = Dispatcher(bus=bus, targets={"push": target(receiver, 1.0)}, tuning=FAST)
        worker.start()
        try:
            await worker.enqueue("push:c:1", envelope("push", "chat.message", {"n": 1}))
            await asyncio.sleep(1.6)
            attempts = len(receiver.all())
            assert attempts >= 3  # retried meanwhile
            assert await bus.outbox_size() == 0  # then given up
            await asyncio.sleep(0.5)
            assert len(receiver.all()) == attempts
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
            await asyncio.to_thread(receiver.wait_for, lambda ds: len(ds) == 2)
            first, second = receiver.all()
            assert (first.status, second.status) == (503, 200)
            assert second.at - first.at >= 0.95
        finally:
            await worker.aclose()


async def test_an_item_whose_webhook_is_gone_waits_for_it() -> None:
    bus = MemoryBus()
    with Receiver() as receiver:
        lonely = Dispatcher(bus=bus, targets={"push": target(receiver)}, tuning=FAST)
        await lonely.enqueue("offline:2", envelope("offline", "offline.message", {"t": 2}))
        lonely.start()
        await asyncio.sleep(0.5)
        await lonely.aclose()
        assert receiver.all() == [] and await bus.outbox_size() == 1
        # Configured again (a restart with the setting back): delivered.
        worker = Dispatcher(bus=bus, targets={"offline": target(receiver)}, tuning=FAST)
        worker.start()
        try:
            await asyncio.to_thread(receiver.wait_for, lambda ds: bool(receiver.accepted()), 5)
            assert [d.json()["data"] for d in receiver.accepted()] == [{"t": 2}]
        finally:
            await worker.aclose()
