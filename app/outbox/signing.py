"""Standard Webhooks signing and the envelope an outbox item carries: pure functions.

Owns the scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">`, several signatures during a key rotation), the secret's
format (`whsec_` + base64 of 24 to 64 bytes), and the envelope (`kind`, stable `webhook-id`,
creation time, JSON body) stored in the outbox. It must not do I/O (`webhooks.py` delivers)
and never logs. Its retries' backoff is the one of `supervision.restart_delay`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
