"""The pure rules of `Idempotency-Key` (app/edge/idempotency.py applies them): which header values
are keys, where a key's entry lives, what makes two requests the same request, and which
answers are kept for how long. Table-tested; no I/O, no clock.

The one parser of the header: every route and layer that reads an Idempotency-Key calls
`parse_key`. It must not know the store or the routes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from starlette.types import Scope

from app.errors import InvalidInputError

# At least 128 bits if the characters are random: 22 of 64 symbols (132 bits), or a UUID
# (36 characters of this alphabet). Quoted (a Structured Field string, as the IETF draft
# writes it) or bare, the same key.
MIN_KEY_CHARS = 22
MAX_KEY_CHARS = 255
_TOKEN = rf"[A-Za-z0-9_-]{{{MIN_KEY_CHARS},{MAX_KEY_CHARS}}}"
_KEY = re.compile(_TOKEN)
KEY_RULE = (
    "Idempotency-Key: must be a UUID or 22 to 255 characters of A-Z, a-z, 0-9, '-' and '_' "
    "(at least 128 random bits), bare or in double quotes"
)
# For OpenAPI (ECMA-262; in code the whole value must match).
KEY_PATTERN = f'^(?:"{_TOKEN}"|{_TOKEN})$'


class KeyRefusedError(InvalidInputError):
    default_message = KEY_RULE


def parse_key(raw: bytes | str) -> str:
    """The key of one Idempotency-Key header value; KeyRefusedError (400) for anything that is
    not one: malformed, or too short to be unguessable (a key names a stored answer that is
    replayed to whoever presents it again, so it must be as hard to guess as a handle)."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    try:
        text = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        raise KeyRefusedError() from None
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not _KEY.fullmatch(text):
        raise KeyRefusedError()
    return text


def client_digest(identity: str) -> str:
    """The store's name for a client (the identity the per-IP limits key by): a digest, so no
    address is ever written to the bus."""
    return hashlib.blake2b(f"idempotency-client\0{identity}".encode(), digest_size=12).hexdigest()


def slot_of(key: str, path: str) -> str:
    # Every route answers with and without a trailing slash: one resource, one slot.
    path = path.rstrip("/")
    return hashlib.sha256(f"idempotency\0{path}\0{key}".encode()).hexdigest()[:40]


def fingerprint_of(scope: Scope, body: bytes) -> str:
    """What makes two requests the same request: method, path, query and body, the body as
    canonical JSON when it is JSON (a retry from another client library may space or order
    the same object differently)."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode()
    except (ValueError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (
        scope["method"].encode(),
        scope["path"].rstrip("/").encode(),
        scope["query_string"],
        canonical,
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Retention:
    """How long answers are kept: `keep_s` for a success, `keep_error_s` for a final refusal."""

    keep_s: float
    keep_error_s: float


def kept_for(status: int, *, admitted: bool, retention: Retention) -> float | None:
    """Seconds to keep an answer, or None when it is not final, so a retry runs again.

    * 2xx: something happened (a chat created, a message sent): kept for the whole window,
      whether or not the route said it passed its limits (a success is never forgotten).
    * 5xx, 429: nothing happened or we cannot know; the client is told to retry.
    * 409: a state of the moment (closed, "not now", a chat already completed): a retry
      later may rightly get another answer.
    * other refusals (400, 404): kept briefly, and only once the request passed its route's
      limits (`admitted`). Before that point the answer depends on the input alone (bad
      body, unknown handle) or on a limit: a retry gets the same answer by running again,
      and keeping it would let any client fill the store without ever passing a limit.
    """
    if 200 <= status < 300:
        return retention.keep_s
    if status >= 500 or status in (409, 429) or not admitted:
        return None
    return retention.keep_error_s
