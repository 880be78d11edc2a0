"""The signing scheme and the retry schedule as pure functions, against tables and against the
`standardwebhooks` library's own signer; and a receiver's Retry-After (seconds or an HTTP date,
through the one parser) setting when a delivery is tried again, in process."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.bus import MemoryBus
from app.bus.hooks import OutboxQuota
from app.outbox.push import is_agent_text
from app.outbox.webhooks import (
    DeliveryTuning,
    Dispatcher,
    Envelope,
    WebhookTarget,
    envelope,
    parse_secret,
    signature,
    signed_headers,
)
from app.supervision import Backoff, restart_delay

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body"),
    [
        ("msg_1", 1_700_000_000, b'{"a":1}'),
        ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, b'{"test": 2432232314}'),
        ("msg_x", 0, '{"text":"gr\u00fc\u00df dich \u2764"}'.encode()),
    ],
)
def test_signature_matches_the_library(msg_id: str, timestamp: int, body: bytes) -> None:
    theirs = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    assert signature(parse_secret(SECRET), msg_id, timestamp, body) == theirs


def test_every_key_signs_during_a_rotation() -> None:
    old, new = parse_secret(SECRET), bytes(range(100, 132))
    headers = signed_headers([new, old], "msg_r", 1_700_000_000, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["webhook-signature"].split(" ")[1] == signature(
        old, "msg_r", 1_700_000_000, b"{}"
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("abc", "starts with whsec_"),
        ("whsec_***", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24 to 64 bytes"),
    ],
)
def test_bad_secrets_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_secret(text)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.0, 0.5),
        (1, 0.999, 0.9995),
        (2, 0.0, 1.0),
        (4, 0.5, 6.0),
        (10, 0.0, 150.0),  # capped at 300, half of it fixed
        (10_000, 0.0, 150.0),
        (0, 0.0, 0.5),
    ],
)
def test_retry_delay_doubles_up_to_the_cap(attempt: int, jitter: float, expected: float) -> None:
    # The one backoff (app.supervision), over BFF_WEBHOOK_RETRY_MIN_S and _MAX_S.
    retries = Backoff(first_s=1.0, max_s=300.0)
    assert restart_delay(attempt, retries, jitter) == pytest.approx(expected)


def http_date(from_now_s: float) -> str:
    return email.utils.formatdate(time.time() + from_now_s, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        (None, 0.0, 0.05),  # the backoff alone: its first step
        ("100", 99.0, 100.0),
        (lambda: http_date(100), 98.0, 101.0),  # an HTTP date, read by the one parser
        (lambda: http_date(10_000), 299.0, 300.0),  # never beyond BFF_WEBHOOK_RETRY_MAX_S
        ("soon", 0.0, 0.05),  # unreadable: the backoff alone
    ],
)
async def test_a_receivers_retry_after_sets_the_next_try(
    retry_after: object, low: float, high: float
) -> None:
    value = retry_after() if callable(retry_after) else retry_after
    answered = asyncio.Event()

    async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [] if value is None else [(b"retry-after", str(value).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        answered.set()

    bus = MemoryBus()
    target = WebhookTarget(
        "http://receiver.local/hook",
        (parse_secret(SECRET),),
        OutboxQuota(max_items=10, max_bytes=1 << 20),
    )
    worker = Dispatcher(
        bus=bus,
        targets={"offline": target},
        tuning=DeliveryTuning(retry_min_s=0.05, retry_max_s=300.0, poll_s=60.0),
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver)),
    )
    worker.start()
    try:
        await worker.enqueue("offline:1", envelope("offline", "offline.message", {"n": 1}))
        await answered.wait()
    finally:
        await worker.aclose()  # lets the attempt in flight schedule its retry
    batch = await bus.outbox_claim("offline", 10, 60.0)
    assert batch.claims == []  # not due yet
    assert batch.next_due_s is not None
    assert low <= batch.next_due_s <= high


def test_envelope_round_trip() -> None:
    envelope = Envelope("push", "msg_1", 1.5, {"type": "chat.ended", "data": {"chat": "h"}})
    assert Envelope.decode(envelope.encode()) == envelope
    for bad in ("[]", '{"k": "push"}', "nope"):
        with pytest.raises((ValueError, KeyError)):
            Envelope.decode(bad)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "Text", "from": {"type": "Agent"}}, True),
        ({"type": "Text", "from": {"type": "External"}}, True),
        ({"type": "Text"}, True),
        ({"type": "Text", "from": {"type": "Customer"}}, False),
        ({"type": "TypingStarted", "from": {"type": "Agent"}}, False),
        ({"type": "ParticipantJoined", "from": {"type": "Agent"}}, False),
        ({"type": "Text", "from": "Agent"}, True),
    ],
)
def test_what_counts_as_an_agent_message(body: dict[str, object], expected: bool) -> None:
    assert is_agent_text(body) is expected
