"""The gate in front of the simulated upstream routes (/api/v2): every request is counted and
logged, its cookies are checked, injected faults are applied, and the tenant and identity
headers are enforced, before the operation itself runs.

A pure ASGI middleware (so it can hang or drop a connection). It must not implement any chat
operation and must leave every other path (the control API) untouched.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.emulator.core import Emulator
from app.emulator.faults import CannedResponse, DroppedConnection, fault_response, json_error
from app.emulator.recording import join_headers
from app.emulator.state import COOKIE_NAME

UPSTREAM_PREFIX = "/api/v2"
SEQ_SCOPE_KEY = "emulator.seq"
"""Scope key carrying the log sequence number of the request to the route."""


def is_upstream_path(path: str) -> bool:
    return path == UPSTREAM_PREFIX or path.startswith(UPSTREAM_PREFIX + "/")


def cookie_values(header: str | None, name: str = COOKIE_NAME) -> list[str]:
    """All values of cookie `name` in a Cookie header."""
    if not header:
        return []
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            values.append(value.strip())
    return values


async def send_canned(send: Send, response: CannedResponse) -> None:
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    await send({"type": "http.response.body", "body": response.body})


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, and whether the client disconnected meanwhile."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that yields the already-read body once, then defers to `receive`."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class UpstreamGate:
    """ASGI middleware applying accounting, faults and header rules to /api/v2 requests."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_upstream_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        emulator = self.emulator
        arrived = time.monotonic()
        body, disconnected = await read_body(receive)
        headers = join_headers(list(scope["headers"]))
        method: str = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        entry = emulator.log.record(method, scope["path"], query, headers, body, arrived)
        chat = emulator.chats.get(entry.chat_id) if entry.chat_id is not None else None
        if chat is not None:
            chat.note_cookies(cookie_values(headers.get("cookie")))
        if disconnected:
            return

        faults = emulator.fault_switch.take(method)
        if faults is not None:
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.drop_connection:
                # Start an answer that never completes, then fail: the server closes the
                # connection; an in-process client gets a transport error.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"64")],
                    }
                )
                raise DroppedConnection()
            if faults.hang:
                await self._hang(receive, send)
                return
            canned = fault_response(faults)
            if canned is not None:
                await send_canned(send, canned)
                return

        if "authorization" in headers:
            await send_canned(send, json_error(403, 5, "No permission"))
            return
        required = emulator.config.contact_center_id
        if required is not None and headers.get("contactcenterid") != required:
            await send_canned(send, json_error(400, 3, "Operation forbidden"))
            return

        if chat is not None:
            emulator.touch(chat)
        inner_scope = dict(scope)
        inner_scope[SEQ_SCOPE_KEY] = entry.seq
        await self.app(inner_scope, replay(body, receive), send)

    async def _hang(self, receive: Receive, send: Send) -> None:
        """Answer nothing until the client goes away; if the emulator closes first, 503."""

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        closing = self.emulator.hang_future()
        watcher = asyncio.ensure_future(client_gone())
        try:
            done, _ = await asyncio.wait({closing, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            closing.cancel()
        if watcher not in done:
            await send_canned(send, json_error(503, 4, "Service is shutting down"))
