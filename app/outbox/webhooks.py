"""Webhook delivery: the workers that drain the bus's outbox, one per kind of notice.

Owns how a notice leaves chat-bff for an operator's backend (signed by `signing`):
enqueueing under its kind's quota, one supervised worker per configured kind (a receiver that
is down or slow never holds up another kind's deliveries), retries with exponential backoff
and jitter (the one of `supervision.restart_delay`, at least the receiver's Retry-After, read
by the one parser of `upstream.parse`), and dead-lettering notices past their kind's age limit
or unreadable (counted, logged, removed). Deliveries are at least once with a stable
`webhook-id` (a claim that expires hands an item to another instance when its worker dies
mid-request). Anything that goes wrong in one delivery is a retry of that delivery, never the
end of a worker; a worker that crashes nevertheless is restarted by `app.supervision`. It must
not decide what to notify (`push.py`, `offline.py`), and never logs a body, a URL or a secret.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

from app.bus.base import RETENTION_S
from app.bus.hooks import Claim, ClaimBatch, Outbox, OutboxHeld, OutboxItem, OutboxQuota
from app.clock import SYSTEM_CLOCK, Clock, Random
from app.errors import BffError, OutboxFullError, describe_exception
from app.outbox.signing import (
    Envelope,
    envelope,
    new_message_id,
    parse_secret,
    signature,
    signed_headers,
)
from app.supervision import RESTARTS, Backoff, restart_delay, supervise
from app.upstream.parse import retry_after_s

__all__ = [
    "DeliveryObserver",
    "DeliveryTuning",
    "Dispatcher",
    "Envelope",
    "WebhookTarget",
    "envelope",
    "new_message_id",
    "parse_secret",
    "signature",
    "signed_headers",
]

log = logging.getLogger("chat_bff.webhooks")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one kind of notice goes, what the outbox may hold of it (`quota`), and when it is
    given up (`max_age_s` after it was enqueued; None: kept until delivered)."""

    url: str
    keys: tuple[bytes, ...]
    quota: OutboxQuota
    max_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryTuning:
    """`retry_min_s` to `retry_max_s`: the retry backoff of one delivery; `restarts`: the
    delays before a crashed worker runs again."""

    timeout_s: float = 5.0
    retry_min_s: float = 1.0
    retry_max_s: float = 300.0
    # Delivered ids are remembered as long as the cache keeps a chat (BFF_CACHE_RETENTION_S).
    done_ttl_s: float = RETENTION_S
    poll_s: float = 1.0
    batch: int = 16
    restarts: Backoff = RESTARTS


class DeliveryObserver(Protocol):
    """What the workers report (`Metrics` implements it). Labels: the kind, an outcome
    (`delivered`, `failed`, `error`), a dead letter's reason (`max_age`, `unreadable`), the
    limit a refused put hit (`items`, `bytes`)."""

    def delivery(self, kind: str, outcome: str) -> None: ...

    def dead_letter(self, kind: str, reason: str) -> None: ...

    def refused(self, kind: str, limit: str) -> None: ...

    def held(self, kind: str, items: int, nbytes: int) -> None: ...


class _Unobserved:
    def delivery(self, kind: str, outcome: str) -> None:
        pass

    def dead_letter(self, kind: str, reason: str) -> None:
        pass

    def refused(self, kind: str, limit: str) -> None:
        pass

    def held(self, kind: str, items: int, nbytes: int) -> None:
        pass


class Dispatcher:
    """The delivery workers of one instance: per configured kind, one task claims that kind's
    due outbox items (any instance's), POSTs them signed, and marks them done or schedules a
    retry; at most `batch` requests in flight per kind. Started and stopped by the lifespan."""

    def __init__(
        self,
        *,
        bus: Outbox,
        targets: Mapping[str, WebhookTarget],
        tuning: DeliveryTuning,
        client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rand: Random = random.random,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._bus = bus
        self._targets = dict(targets)
        self._tuning = tuning
        self._client = client or httpx.AsyncClient(
            timeout=tuning.timeout_s,
            follow_redirects=False,
            headers={"user-agent": "chat-bff-webhooks"},
        )
        # Notice ages and signatures (its wall time), the workers' waits, the retry jitter.
        self._clock = clock
        self._rand = rand
        self._observer: DeliveryObserver = observer or _Unobserved()
        # A claim outlives the longest request by far: an item is only handed to another
        # worker when its claimer is gone, not while it is still waiting for an answer.
        self._claim_s = tuning.timeout_s * 2 + 5
        self._retries = Backoff(first_s=tuning.retry_min_s, max_s=tuning.retry_max_s)
        self._wakes = {kind: asyncio.Event() for kind in self._targets}
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def tuning(self) -> DeliveryTuning:
        return self._tuning

    def accepts(self, kind: str) -> bool:
        return kind in self._targets

    async def enqueue(self, item_id: str, notice: Envelope) -> bool:
        """Store `notice` in the outbox under `item_id` (idempotent), within its kind's quota,
        and wake its worker. True when stored, False when that id was queued or delivered
        already; OutboxFullError (counted) when the kind holds its quota."""
        target = self._targets.get(notice.kind)
        if target is None:
            raise ValueError(f"no webhook is configured for {notice.kind!r} notices")
        item = OutboxItem(item_id, notice.encode(), notice.kind)
        try:
            stored = await self._bus.outbox_put(item, target.quota)
        except OutboxFullError as full:
            self._observer.refused(notice.kind, full.limit)
            raise
        self.wake(notice.kind)
        return stored

    def wake(self, kind: str | None = None) -> None:
        for name, event in self._wakes.items():
            if kind is None or name == kind:
                event.set()

    def start(self) -> None:
        if self._tasks:
            return
        for kind in self._targets:
            work = supervise(
                functools.partial(self._run, kind),
                what=f"webhook worker of {kind} notices",
                logger=log,
                backoff=self._tuning.restarts,
                pause=self._pause,
                clock=self._clock,
                rand=self._rand,
            )
            self._tasks.append(asyncio.create_task(work, name=f"webhook-worker:{kind}"))

    async def aclose(self) -> None:
        """Stop claiming; let the requests in flight finish within the timeout (a request cut
        off would be delivered again by another instance), then close the client."""
        self._stopped.set()
        self.wake()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self._tuning.timeout_s + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _pause(self, seconds: float) -> None:
        await self._clock.wait(self._stopped, seconds)

    async def _run(self, kind: str) -> None:
        tuning, wake = self._tuning, self._wakes[kind]
        while not self._stopped.is_set():
            wake.clear()
            try:
                batch = await self._bus.outbox_claim(kind, tuning.batch, self._claim_s)
            except BffError as error:
                log.warning("outbox claim failed: %s", type(error).__name__)
                batch = ClaimBatch([], None, OutboxHeld())
            else:
                self._observer.held(kind, batch.held.items, batch.held.bytes)
            if batch.claims:
                await asyncio.gather(*(self._attempt(claim) for claim in batch.claims))
                continue
            due = batch.next_due_s
            pause = tuning.poll_s if due is None else min(tuning.poll_s, due)
            await self._clock.wait(wake, max(pause, 0.01))

    async def _attempt(self, claim: Claim) -> None:
        """One delivery, whatever happens in it: an unexpected exception (a receiver's odd
        answer, a bug) is logged by type and place and the item retried, like any failure."""
        try:
            await self._deliver(claim)
        except Exception as error:
            log.error(
                "%s notice attempt %d failed unexpectedly (%s); retried",
                claim.kind,
                claim.attempt,
                describe_exception(error),
            )
            self._observer.delivery(claim.kind, "error")
            await self._retry(claim, self._backoff(claim.attempt, None))

    async def _deliver(self, claim: Claim) -> None:
        try:
            notice = Envelope.decode(claim.payload)
        except (ValueError, KeyError, TypeError):
            await self._dead_letter(claim, "unreadable", None)
            return
        target = self._targets[claim.kind]
        age = self._clock.time() - notice.created
        if target.max_age_s is not None and age > target.max_age_s:
            await self._dead_letter(claim, "max_age", age)
            return
        body = json.dumps(notice.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = signed_headers(target.keys, notice.msg_id, int(self._clock.time()), body)
        retry_after: int | None = None
        try:
            answer = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        else:
            if 200 <= answer.status_code < 300:
                log.info("%s notice delivered (attempt %d)", claim.kind, claim.attempt)
                self._observer.delivery(claim.kind, "delivered")
                await self._finish(claim)
                return
            outcome = f"HTTP {answer.status_code}"
            retry_after = retry_after_s(
                answer.headers.get("retry-after", ""), cap_s=int(self._tuning.retry_max_s)
            )
        delay = self._backoff(claim.attempt, retry_after)
        log.info(
            "%s notice attempt %d failed (%s), next in %.1f s",
            claim.kind,
            claim.attempt,
            outcome,
            delay,
        )
        self._observer.delivery(claim.kind, "failed")
        await self._retry(claim, delay)

    def _backoff(self, attempt: int, retry_after: int | None) -> float:
        delay = restart_delay(attempt, self._retries, self._rand())
        if retry_after is not None:
            delay = min(max(delay, retry_after), self._retries.max_s)
        return delay

    async def _dead_letter(self, claim: Claim, reason: str, age: float | None) -> None:
        old = "" if age is None else f", {age:.0f} s old"
        log.warning(
            "%s notice dead-lettered (%s) after %d attempts%s",
            claim.kind,
            reason,
            claim.attempt,
            old,
        )
        self._observer.dead_letter(claim.kind, reason)
        await self._finish(claim)

    async def _finish(self, claim: Claim) -> None:
        remember = self._targets[claim.kind].quota.max_items
        try:
            done = await self._bus.outbox_done(
                claim, done_ttl_s=self._tuning.done_ttl_s, remember=remember
            )
            if not done:
                log.warning("outbox claim on a %s notice expired before it was done", claim.kind)
        except BffError as error:
            # The claim expires and another attempt delivers it again (same webhook-id).
            log.warning("outbox done failed: %s", type(error).__name__)

    async def _retry(self, claim: Claim, delay_s: float) -> None:
        try:
            await self._bus.outbox_retry(claim, delay_s)
        except BffError as error:
            # The claim expires and the item falls due again by itself.
            log.warning("outbox retry failed: %s", type(error).__name__)
