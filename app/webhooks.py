"""Signed webhooks: the signing scheme, and the delivery worker that drains the bus's outbox.

Owns how a notice leaves chat-bff for an operator's backend: Standard Webhooks signing
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`), the envelope an outbox item carries, retries with exponential backoff
and jitter, and giving up on notices past their age limit. Deliveries are at least once with
a stable `webhook-id` (a claim that expires hands an item to another instance when its worker
dies mid-request). It must not decide what to notify (`push.py`, `offline.py`), and never logs
a body, a URL or a secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.bus.base import Claim, Outbox, OutboxItem
from app.errors import BffError

log = logging.getLogger("chat_bff.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64


def parse_secret(text: str) -> bytes:
    """A Standard Webhooks secret, `whsec_` + base64 of 24 to 64 random bytes, as its key bytes
    (the form receivers' libraries accept as is). ValueError for anything else."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"a webhook secret holds {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes of key"
        )
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>")>`."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery attempt. Several keys (rotation) give several signatures,
    space-separated: a receiver accepts the message when any one matches."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
        "content-type": "application/json",
    }


def retry_delay(attempt: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """Seconds before the next try after failed attempt number `attempt` (1 first): doubling
    from `base_s` up to `cap_s`, the upper half of it random (`jitter` in [0, 1)) so a fleet
    does not retry in step."""
    ceiling: float = min(cap_s, base_s * 2.0 ** min(max(attempt - 1, 0), 30))
    return ceiling / 2 + ceiling / 2 * jitter


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


def utc_iso(epoch_s: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))
    return f"{stamp}.{int(epoch_s * 1000) % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What an outbox item carries: which webhook (`kind`), the stable `webhook-id`, when it
    was created (epoch seconds) and the JSON body."""

    kind: str
    msg_id: str
    created: float
    body: dict[str, Any]

    def encode(self) -> str:
        return json.dumps(
            {"k": self.kind, "w": self.msg_id, "t": self.created, "b": self.body},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def decode(cls, payload: str) -> Envelope:
        data = json.loads(payload)
        if not isinstance(data, dict) or not isinstance(data.get("b"), dict):
            raise ValueError("not an envelope")
        return cls(str(data["k"]), str(data["w"]), float(data["t"]), data["b"])


def envelope(kind: str, event_type: str, data: dict[str, Any]) -> Envelope:
    """A new notice in the Standard Webhooks payload shape: `{"type", "timestamp", "data"}`."""
    now = time.time()
    body = {"type": event_type, "timestamp": utc_iso(now), "data": data}
    return Envelope(kind, new_message_id(), now, body)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one kind of notice goes. `max_age_s`: give up on a notice this old (None: keep
    trying until delivered)."""

    url: str
    keys: tuple[bytes, ...]
    max_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryTuning:
    timeout_s: float = 5.0
    retry_min_s: float = 1.0
    retry_max_s: float = 300.0
    done_ttl_s: float = 86_400.0
    max_items: int = 100_000
    poll_s: float = 1.0
    batch: int = 16


class Dispatcher:
    """The delivery worker of one instance: claims due outbox items (any instance's), POSTs
    them signed, and marks them done or schedules a retry. One task, started and stopped by
    the app's lifespan; a batch of at most `batch` requests in flight."""

    def __init__(
        self,
        *,
        bus: Outbox,
        targets: Mapping[str, WebhookTarget],
        tuning: DeliveryTuning,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._targets = dict(targets)
        self._tuning = tuning
        self._client = client or httpx.AsyncClient(
            timeout=tuning.timeout_s,
            follow_redirects=False,
            headers={"user-agent": "chat-bff-webhooks"},
        )
        self._clock = clock
        # A claim outlives the longest request by far: an item is only handed to another
        # worker when its claimer is gone, not while it is still waiting for an answer.
        self._claim_s = tuning.timeout_s * 2 + 5
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def tuning(self) -> DeliveryTuning:
        return self._tuning

    def accepts(self, kind: str) -> bool:
        return kind in self._targets

    async def enqueue(self, item_id: str, notice: Envelope) -> bool:
        """Store `notice` in the outbox under `item_id` (idempotent) and wake this worker.
        True when stored, False when that id was queued or delivered already."""
        stored = await self._bus.outbox_put(
            OutboxItem(item_id, notice.encode()), max_items=self._tuning.max_items
        )
        self.wake()
        return stored

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None and self._targets:
            self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def aclose(self) -> None:
        """Stop claiming; let the requests in flight finish within the timeout (a request cut
        off would be delivered again by another instance), then close the client."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self._tuning.timeout_s + 1):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        tuning = self._tuning
        while not self._stopping:
            self._wake.clear()
            try:
                claims, next_due = await self._bus.outbox_claim(tuning.batch, self._claim_s)
            except BffError as error:
                log.warning("outbox claim failed: %s", type(error).__name__)
                claims, next_due = [], None
            if claims:
                await asyncio.gather(*(self._deliver(c) for c in claims))
                continue
            pause = tuning.poll_s if next_due is None else min(tuning.poll_s, next_due)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(pause, 0.01)):
                    await self._wake.wait()

    async def _deliver(self, claim: Claim) -> None:
        try:
            notice = Envelope.decode(claim.payload)
        except (ValueError, KeyError, TypeError):
            log.error("outbox item %s is unreadable: dropped", claim.id)
            await self._finish(claim)
            return
        target = self._targets.get(notice.kind)
        if target is None:
            # Its webhook is no longer configured: keep it until one is.
            await self._retry(claim, self._tuning.retry_max_s)
            return
        age = self._clock() - notice.created
        if target.max_age_s is not None and age > target.max_age_s:
            log.warning(
                "%s notice given up after %d attempts (%.0f s old)", notice.kind, claim.attempt, age
            )
            await self._finish(claim)
            return
        body = json.dumps(notice.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = signed_headers(target.keys, notice.msg_id, int(self._clock()), body)
        retry_after: float | None = None
        try:
            answer = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        else:
            if 200 <= answer.status_code < 300:
                log.info("%s notice delivered (attempt %d)", notice.kind, claim.attempt)
                await self._finish(claim)
                return
            outcome = f"HTTP {answer.status_code}"
            value = answer.headers.get("retry-after", "")
            retry_after = float(value) if value.isdigit() else None
        delay = retry_delay(
            claim.attempt,
            base_s=self._tuning.retry_min_s,
            cap_s=self._tuning.retry_max_s,
            jitter=random.random(),
        )
        if retry_after is not None:
            delay = min(max(delay, retry_after), self._tuning.retry_max_s)
        log.info(
            "%s notice attempt %d failed (%s), next in %.1f s",
            notice.kind,
            claim.attempt,
            outcome,
            delay,
        )
        await self._retry(claim, delay)

    async def _finish(self, claim: Claim) -> None:
        try:
            if not await self._bus.outbox_done(claim, done_ttl_s=self._tuning.done_ttl_s):
                log.warning("outbox claim on %s expired before it was done", claim.id)
        except BffError as error:
            # The claim expires and another attempt delivers it again (same webhook-id).
            log.warning("outbox done failed: %s", type(error).__name__)

    async def _retry(self, claim: Claim, delay_s: float) -> None:
        try:
            await self._bus.outbox_retry(claim, delay_s)
        except BffError as error:
            log.warning("outbox retry failed: %s", type(error).__name__)
