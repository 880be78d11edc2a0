"""`Idempotency-Key` on POSTs under /api/v2/ (IETF httpapi draft "The Idempotency-Key HTTP
Header Field"): a retry of a request whose answer was lost is answered with the first answer
and never reaches the upstream again, whichever instance it reaches.

Owns the key's syntax, the request fingerprint, and the answers kept: a pure ASGI middleware
in front of the routes, storing through the bus (`IdempotencyStore`), so the guarantee holds
across the fleet. For one key and path (the key is the client's; the path keeps two chats'
keys apart):

* the first request runs; its answer is kept for `keep_s` if it is final (below 500 and not
  429: an unavailable upstream or a rate limit changed nothing, so a retry should run again);
* a retry with the same body replays it: same status, same body, `Idempotent-Replayed: true`;
* a request with the same key but another body is refused with 400 (the draft suggests 422;
  this API answers every invalid input with 400, statusCode 10);
* a retry while the first is still running is refused with 409 and Retry-After.

A POST without the header is untouched. It must not know what the routes do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Awaitable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.bus.base import IdempotencyStore
from app.errors import (
    BffError,
    BusUnavailableError,
    ClientError,
    InvalidInputError,
    error_response,
)
from app.http import replay_body

log = logging.getLogger("chat_bff.idempotency")

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
# A Structured Field string (the draft's syntax), or the bare token many clients send.
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_BARE = re.compile(r"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+")
MAX_KEY_CHARS = 255
# Both forms, for OpenAPI: a quoted string (escapes count as one character) or a bare token.
KEY_PATTERN = (
    r'^(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}"'
    r"|[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]{1,255})$"
)
# Answers larger than this are not kept (ours are a few hundred bytes).
MAX_ANSWER_BYTES = 65_536
_KEPT_HEADERS = frozenset({b"content-type", b"retry-after"})


class KeyReusedError(InvalidInputError):
    default_message = "Idempotency-Key: already used for a different request"


class KeyInFlightError(ClientError):
    http_status = 409
    status_code = 2
    default_message = "Idempotency-Key: a request with this key is still in progress"


def parse_key(raw: bytes) -> str | None:
    """The key of an Idempotency-Key header value, or None when it is not one."""
    try:
        text = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    quoted = _SF_STRING.fullmatch(text)
    if quoted is not None:
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif _BARE.fullmatch(text):
        key = text
    else:
        return None
    return key if 1 <= len(key) <= MAX_KEY_CHARS else None


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


def _storable(status: int) -> bool:
    return status < 500 and status != 429


class IdempotencyGuard:
    """See the module docstring. Sits inside `ApiGuard`, which has already refused oversized,
    non-JSON and foreign-origin requests, and read the body within its limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: IdempotencyStore,
        keep_s: float,
        in_flight_s: float,
        prefix: str = "/api/v2/",
    ) -> None:
        self.app = app
        self.store = store
        self.keep_s = keep_s
        self.in_flight_s = in_flight_s
        self.prefix = prefix

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: what passes through (every read, every stream) runs as the app's
        # own awaitable, holding no frame of this layer while it lasts.
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(self.prefix)
        ):
            return self.app(scope, receive, send)
        values = [v for name, v in scope["headers"] if name == HEADER]
        if not values:
            return self.app(scope, receive, send)
        return self._keyed(scope, receive, send, values)

    async def _keyed(self, scope: Scope, receive: Receive, send: Send, values: list[bytes]) -> None:
        key = parse_key(values[0]) if len(values) == 1 else None
        if key is None:
            await self._refuse(InvalidInputError("Idempotency-Key: not a valid key"), scope, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        slot = slot_of(key, scope["path"])
        try:
            claim = await self.store.idempotency_begin(
                slot, fingerprint_of(scope, bytes(body)), self.in_flight_s
            )
        except BffError as error:
            await self._refuse(error, scope, send)
            return
        if claim.state == "mismatch":
            await self._refuse(KeyReusedError(), scope, send)
        elif claim.state == "in_flight":
            await self._refuse(KeyInFlightError(retry_after_s=1), scope, send)
        elif claim.state == "done":
            await self._replay(claim.answer or "", scope, send)
        else:
            await self._first(slot, claim.token, bytes(body), scope, receive, send)

    async def _first(
        self, slot: str, token: str, body: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 0
        headers: list[list[str]] = []
        chunks: list[bytes] = []
        size = 0

        async def keeping(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() in _KEPT_HEADERS:
                        headers.append([name.decode("latin-1"), value.decode("latin-1")])
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_ANSWER_BYTES:
                    chunks.append(chunk)
            await send(message)

        kept = False
        try:
            await self.app(scope, replay_body(body, receive), keeping)
            if _storable(status) and 0 < size <= MAX_ANSWER_BYTES:
                answer = {"s": status, "h": headers, "b": b"".join(chunks).decode("latin-1")}
                kept = await self.store.idempotency_finish(
                    slot, token, json.dumps(answer), self.keep_s
                )
                if not kept:
                    log.warning("idempotent answer not kept: its claim had expired")
        except BusUnavailableError:
            # The answer went out; only keeping it failed. The claim expires in its time.
            log.warning("idempotent answer not kept: bus unavailable")
            kept = True
        finally:
            if not kept:
                with contextlib.suppress(BffError):
                    await self.store.idempotency_abandon(slot, token)

    async def _replay(self, stored: str, scope: Scope, send: Send) -> None:
        answer: dict[str, Any] = json.loads(stored)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer["h"]]
        body: bytes = answer["b"].encode("latin-1")
        headers += [(b"content-length", str(len(body)).encode()), REPLAYED]
        await send({"type": "http.response.start", "status": answer["s"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _refuse(error: BffError, scope: Scope, send: Send) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await error_response(error)(scope, no_body, send)


# -- OpenAPI --------------------------------------------------------------------------------


def install_idempotency_docs(app: FastAPI) -> None:
    """Document the header on the app's OpenAPI document (built by `app.openapi`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            document_openapi(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_openapi(schema: dict[str, Any]) -> None:
    """Add the header and its answers to every POST under /api/v2/ in an OpenAPI document."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "A unique key per intended operation (a UUID). A retry with the same key and body "
            "within the idempotency window gets the first answer again (with "
            "`Idempotent-Replayed: true`) and is not performed twice. Final answers are kept "
            "(below 500, except 429)."
        ),
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    }
    notes = {
        "400": "an Idempotency-Key that is malformed or was used for a different request",
        "409": "a request with this Idempotency-Key is still in progress (see Retry-After)",
    }
    for path, operations in schema.get("paths", {}).items():
        operation = operations.get("post")
        if not path.startswith("/api/v2/") or operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name", "").lower() == "idempotency-key" for p in parameters):
            parameters.append(parameter)
        responses = operation.setdefault("responses", {})
        for status, note in notes.items():
            if status in responses:
                responses[status]["description"] += f"; or {note}"
            elif "400" in responses:
                # The same error body as the operation's other errors.
                responses[status] = {**responses["400"], "description": note.capitalize()}
