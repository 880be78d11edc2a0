"""`Idempotency-Key` on POSTs under /api/v2/ (IETF httpapi draft "The Idempotency-Key HTTP
Header Field"): a retry of a request whose answer was lost is answered with the first answer
and never reaches the upstream again, whichever instance it reaches.

Owns the answers kept: a pure ASGI middleware in front of the routes (inside `ApiGuard`, which
has already refused oversized, non-JSON and foreign-origin requests and read the body within
its limit), storing through the bus (`IdempotencyStore`), so the guarantee holds across the
fleet. The rules themselves (key syntax, slot, fingerprint, what is kept how long) are
`app/edge/idempotency_keys.py`'s. For one client, key and path (a key is its client's: another
client presenting it names another entry, so no answer, and no chat handle, is ever replayed
to anyone but the client that caused it):

* only requests a route takes are looked at: any other path or method goes on to the router
  (404/405) with nothing read, parsed or stored;
* a key that is not a UUID or 22+ URL-safe characters is refused (400);
* the first request runs; its answer is kept if it is final (`kept_for`: a success for
  `keep_s`, a refusal after the route's limits briefly, never 409, 429 or a 5xx);
* a retry with the same body replays it: same status, same body, `Idempotent-Replayed: true`;
* a request with the same key but another body is refused with 400 (the draft suggests 422;
  this API answers every invalid input with 400, statusCode 10);
* a retry while the first is still running is refused with 409 and Retry-After;
* a new key of a client holding `max_per_client` entries, or while the store holds
  `max_total` answers, is refused with 429 and Retry-After (when an entry frees): running it
  unremembered could send it twice, silently, if its answer were lost;
* except that while the store holds `max_total`, a client holding fewer than
  `floor_per_client` entries (a customer, not whoever filled the store) is served without
  its answer being kept: clients filling the store must not refuse everyone's requests for
  an hour, and a lost answer retried in that while is the smaller harm. Counted.

A POST without the header is untouched. It must not know what the routes do beyond the one
mark they set when they pass their limits (`admit`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.bus.guards import IdempotencyClaim, IdempotencyStore
from app.edge.guard import replay_body
from app.edge.idempotency_keys import (
    KEY_PATTERN,
    KEY_RULE,
    KeyRefusedError,
    Retention,
    client_digest,
    fingerprint_of,
    kept_for,
    parse_key,
    slot_of,
)
from app.errors import (
    BffError,
    BusUnavailableError,
    ClientError,
    InvalidInputError,
    RateLimitedError,
    error_response,
)

log = logging.getLogger("chat_bff.idempotency")

HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
# Answers larger than this are not kept (ours are a few hundred bytes).
MAX_ANSWER_BYTES = 65_536
_KEPT_HEADERS = frozenset({b"content-type", b"retry-after"})
_TICKET = "chat_bff.idempotency"


class KeyReusedError(InvalidInputError):
    default_message = "Idempotency-Key: already used for a different request"


class KeyInFlightError(ClientError):
    http_status = 409
    status_code = 2
    default_message = "Idempotency-Key: a request with this key is still in progress"


@dataclass(frozen=True, slots=True)
class IdempotencyPolicy:
    """`retention`: how long answers are kept; `in_flight_s`: how long a claim outlives a
    request that never finished (its instance died); the caps: entries per client (claims
    and answers) and answers in the store (this process, or the fleet on Redis)."""

    retention: Retention
    in_flight_s: float
    max_per_client: int
    max_total: int
    floor_per_client: int = 0


@dataclass(slots=True)
class _Ticket:
    admitted: bool = False


def admit(scope: Scope) -> None:
    """The route passed its limits (rate limits, the opening hours) and is about to act: from
    here a refusal is a final answer, kept like a success (briefly). Without a key, nothing."""
    ticket = scope.get(_TICKET)
    if isinstance(ticket, _Ticket):
        ticket.admitted = True


class IdempotencyGuard:
    """See the module docstring. `client_of(scope)` is the client identity the per-IP limits
    key by; `routes` are the app's (a path no route takes is not looked at);
    `on_refused(limit)` counts a new key refused at a cap ("client" or "total"), `on_unkept()`
    a request served unremembered at the total cap (its client under the floor)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: IdempotencyStore,
        policy: IdempotencyPolicy,
        client_of: Callable[[Scope], str],
        routes: Sequence[BaseRoute] = (),
        on_refused: Callable[[str], None] | None = None,
        on_unkept: Callable[[], None] | None = None,
        prefix: str = "/api/v2/",
    ) -> None:
        self.app = app
        self.store = store
        self.policy = policy
        self.client_of = client_of
        self.routes = routes
        self.on_refused = on_refused
        self.on_unkept = on_unkept
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
        if not values or not self._routed(scope):
            return self.app(scope, receive, send)
        return self._keyed(scope, receive, send, values)

    def _routed(self, scope: Scope) -> bool:
        if not self.routes:
            return True
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    async def _keyed(self, scope: Scope, receive: Receive, send: Send, values: list[bytes]) -> None:
        try:
            if len(values) != 1:
                raise KeyRefusedError(KEY_RULE)
            key = parse_key(values[0])
        except KeyRefusedError as error:
            await self._refuse(error, scope, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        client = client_digest(self.client_of(scope))
        slot = slot_of(key, scope["path"])
        policy = self.policy
        try:
            claim = await self.store.idempotency_begin(
                client,
                slot,
                fingerprint_of(scope, bytes(body)),
                in_flight_s=policy.in_flight_s,
                max_per_client=policy.max_per_client,
                max_total=policy.max_total,
                floor_per_client=policy.floor_per_client,
            )
        except BffError as error:
            await self._refuse(error, scope, send)
            return
        if claim.state == "new":
            await self._first(client, slot, claim.token, bytes(body), scope, receive, send)
        elif claim.state == "done":
            await self._replay(claim.answer or "", scope, send)
        elif claim.state == "unkept":
            if self.on_unkept is not None:
                self.on_unkept()
            await self.app(scope, replay_body(bytes(body), receive), send)
        else:
            await self._refuse(self._refusal(claim), scope, send)

    def _refusal(self, claim: IdempotencyClaim) -> BffError:
        if claim.state == "mismatch":
            return KeyReusedError()
        if claim.state == "in_flight":
            return KeyInFlightError(retry_after_s=1)
        if self.on_refused is not None:
            self.on_refused(claim.limit)
        whose = "this client holds" if claim.limit == "client" else "the server holds"
        wait = min(max(1, math.ceil(claim.retry_after_s)), math.ceil(self.policy.retention.keep_s))
        return RateLimitedError(
            f"Idempotency-Key: {whose} as many remembered requests as it may; retry later",
            retry_after_s=wait,
        )

    async def _first(
        self,
        client: str,
        slot: str,
        token: str,
        body: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        status = 0
        headers: list[list[str]] = []
        chunks: list[bytes] = []
        size = 0
        ticket = _Ticket()

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
            scope[_TICKET] = (
                ticket  # in place, like the router's own marks (the access log reads them)
            )
            await self.app(scope, replay_body(body, receive), keeping)
            keep_s = kept_for(status, admitted=ticket.admitted, retention=self.policy.retention)
            if keep_s is not None and 0 < size <= MAX_ANSWER_BYTES:
                answer = {"s": status, "h": headers, "b": b"".join(chunks).decode("latin-1")}
                kept = await self.store.idempotency_finish(
                    client, slot, token, json.dumps(answer), keep_s
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
                    await self.store.idempotency_abandon(client, slot, token)

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
            "A unique key per intended operation: a UUID, or 22 to 255 random characters of "
            "A-Z, a-z, 0-9, `-` and `_` (at least 128 bits), bare or in double quotes. A "
            "retry by the same client with the same key and body within the idempotency "
            "window gets the first answer again (with `Idempotent-Replayed: true`) and is not "
            "performed twice. Successes are kept for the window, refusals after the route's "
            "limits briefly; 409, 429 and 5xx answers are not kept."
        ),
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    }
    notes = {
        "400": "an Idempotency-Key that is malformed, too short, or was used for a different "
        "request",
        "409": "a request with this Idempotency-Key is still in progress (see Retry-After)",
        "429": "this client (or the server) remembers as many Idempotency-Keys as it may "
        "(see Retry-After)",
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
