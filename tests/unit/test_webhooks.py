"""The signing scheme and the retry schedule as pure functions, against tables and against the
`standardwebhooks` library's own signer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from app.push import is_agent_text
from app.webhooks import Envelope, parse_secret, retry_delay, signature, signed_headers

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
    assert retry_delay(attempt, base_s=1.0, cap_s=300.0, jitter=jitter) == pytest.approx(expected)


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
