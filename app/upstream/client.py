"""The only module that speaks HTTP to the contact center.

Owns the upstream paths, the `ContactCenterId` header, per-chat cookies on the wire, timeouts,
and the translation of every kind of upstream answer (JSON errors, plain text, HTML, garbage,
timeouts, refused connections) into our error tree. It returns normalised values and never
lets an upstream message, header or the contact-center id through to a caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import SecretStr

from app.errors import (
    BffError,
    ChatNotFoundError,
    InvalidInputError,
    InvalidStateError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    describe_exception,
)
from app.models import MAX_UPSTREAM_ID_BYTES, ChatState, TranscriptEntry
from app.upstream.health import UpstreamHealth
from app.upstream.parse import decode_json, parse_set_cookies, retry_after_s
from app.upstream.transcript import MalformedSnapshotError, normalise_chat, normalise_messages
from app.upstream.wire import AiohttpWire, AnswerTooLargeError, HttpxWire, Reply, Wire

log = logging.getLogger("chat_bff.upstream")

# Upstream statusCodes that mean "try again later" rather than "you did it wrong".
_RETRYABLE_CODES = frozenset({12, 13, 14, 15, 16, 17})
_CREDENTIAL_CODES = frozenset({3, 5, 20})

# The client's defaults, and so those of the BFF_UPSTREAM_* settings (app/config/parts.py).
TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0
MAX_CONNECTIONS = 40
MAX_IN_FLIGHT = 32
MAX_BODY_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class ChatCreated:
    upstream_id: str
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a call returned apart from its payload: cookies the upstream set (empty value =
    deleted), to be kept for this chat."""

    cookies: dict[str, str] = field(default_factory=dict)


def _parse_set_cookie(reply: Reply) -> dict[str, str]:
    return parse_set_cookies(reply.set_cookie)


def _cookie_header(cookies: Mapping[str, str]) -> str | None:
    parts = [f"{k}={v}" for k, v in cookies.items() if v]
    return "; ".join(parts) or None


def _retry_after(reply: Reply) -> int | None:
    return retry_after_s(reply.retry_after)


def _sealable(upstream_id: object) -> bool:
    """An id we can seal into a handle and send back in a URL: text of 1..200 UTF-8 bytes."""
    if not isinstance(upstream_id, str) or not upstream_id:
        return False
    try:
        size = len(upstream_id.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        return False
    return size <= MAX_UPSTREAM_ID_BYTES


class UpstreamClient:
    """Customer Chat API v2 calls. One instance per process, shared by all chats."""

    def __init__(
        self,
        base_url: str,
        contact_center_id: SecretStr,
        *,
        timeout_s: float = TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_body_bytes: int = MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[str, str, float], None] | None = None,
        health: UpstreamHealth | None = None,
    ) -> None:
        """`observe(operation, outcome, seconds)` is called after every call: outcome "ok" or
        the name of the error it raised; seconds on the wire (0 when it never got there).
        `health` is told every call's and probe's outcome; readiness probes reach the upstream
        at most once per its readiness window."""
        self._observe = observe
        self._contact_center_id = contact_center_id
        self._deadline_s = timeout_s
        self._base = base_url.rstrip("/") + "/api/v2"
        # The wire alone, not an HTTP client object: we need none of a client's layers (auth,
        # redirects, a cookie jar shared by all chats, event hooks), and on a busy instance
        # they cost more CPU per upstream call than the connection handling itself.
        self._wire: Wire = (
            HttpxWire(
                transport,
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                max_body_bytes=max_body_bytes,
            )
            if transport is not None
            else AiohttpWire(
                max_connections=max_connections,
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                max_body_bytes=max_body_bytes,
            )
        )
        # Bounded concurrency: thousands of pollers wait here, not inside the connection pool,
        # and writes (customers waiting on an answer) get their own slots so they never queue
        # behind polls.
        self._read_slots = asyncio.Semaphore(max_in_flight)
        self._write_slots = asyncio.Semaphore(max(4, max_in_flight // 4))
        self.health = health if health is not None else UpstreamHealth()
        self._probe: asyncio.Task[bool] | None = None
        self._probed: tuple[float, bool] = (-math.inf, False)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self._wire.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        chat: bool,
        cookies: Mapping[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {
            "ContactCenterId": self._contact_center_id.get_secret_value(),
            "Accept": "application/json",
        }
        cookie = _cookie_header(cookies or {})
        if cookie:
            headers["Cookie"] = cookie
        url = self._base + path
        if params:
            url += "?" + urlencode(params)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            operation = str(body["operationName"])
        else:
            operation = "GetMessages" if path.endswith("/messages") else "GetChat"
        started = 0.0
        try:
            # The wire times each phase; the overall deadline also covers in-process wires.
            slots = self._read_slots if method == "GET" else self._write_slots
            async with asyncio.timeout(self._deadline_s + 1), slots:
                started = time.perf_counter()
                reply = await self._wire.exchange(method, url, headers, data)
            payload = self._interpret(reply, chat=chat)
        except TimeoutError:
            error: BffError = UpstreamTimeoutError()
        except OSError as exc:
            log.warning("upstream %s %s failed: %s", method, path.split("/")[1], exc)
            error = UpstreamUnavailableError()
        except BffError as exc:
            error = exc
        except AnswerTooLargeError:
            log.warning("upstream %s answer over the size limit: refused", operation)
            error = UpstreamBadResponseError()
        except Exception as exc:
            # Whatever else an answer did to us, the caller gets a documented error, the log
            # gets the cause, and nothing above this line has to expect the unexpected.
            log.error(
                "upstream %s answer could not be handled: %s", operation, describe_exception(exc)
            )
            error = UpstreamBadResponseError()
        else:
            self.health.succeeded()
            self._observed(operation, "ok", started)
            return payload, _parse_set_cookie(reply)
        if isinstance(error, UpstreamError):
            # Rejections of one request (not found, wrong state) say nothing of its health.
            self.health.failed()
        self._observed(operation, type(error).__name__, started)
        raise error from None

    def _observed(self, operation: str, outcome: str, started: float) -> None:
        if self._observe is not None:
            self._observe(operation, outcome, time.perf_counter() - started if started else 0.0)

    def _interpret(self, reply: Reply, *, chat: bool) -> dict[str, Any]:
        status = reply.status
        decoded = decode_json(reply.body)
        payload = decoded.value
        code = payload.get("statusCode") if isinstance(payload, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            code = None
        if status == 200 and isinstance(payload, dict) and code == 0:
            return payload
        if decoded.problem is not None:
            log.info("upstream answered %s, body %s", status, decoded.problem)
        else:
            log.info("upstream answered %s (statusCode %s)", status, code)
        # The HTTP status says "not now" whatever the body says: honour its Retry-After.
        if status in (502, 503, 504, 429):
            raise UpstreamUnavailableError(retry_after_s=_retry_after(reply))
        if code is not None and code != 0:
            self._raise_for_code(code, reply)
        text = reply.body[:800].decode("utf-8", "replace")[:200].lower() if payload is None else ""
        if chat and (status == 404 or (status == 400 and "not found" in text)):
            raise ChatNotFoundError()
        raise UpstreamBadResponseError()

    def _raise_for_code(self, code: int, reply: Reply) -> None:
        if code == 6:
            raise ChatNotFoundError()
        if code == 2:
            raise InvalidStateError()
        if code in (1, 10):
            raise InvalidInputError("The chat service rejected the request")
        if code in _RETRYABLE_CODES:
            raise UpstreamUnavailableError(retry_after_s=_retry_after(reply))
        if code in _CREDENTIAL_CODES:
            log.error("upstream refused our credentials (statusCode %s): check configuration", code)
        raise UpstreamBadResponseError()

    @staticmethod
    def _chat_path(upstream_id: str) -> str:
        return "/chats/" + quote(upstream_id, safe="")

    async def request_chat(
        self,
        nickname: str,
        subject: str,
        *,
        endpoint: str | None = None,
        user_data: Mapping[str, str] | None = None,
    ) -> ChatCreated:
        body: dict[str, Any] = {
            "operationName": "RequestChat",
            "nickname": nickname,
            "subject": subject,
        }
        if endpoint is not None:
            body["endpoint"] = endpoint
        if user_data:
            body["userData"] = dict(user_data)
        payload, cookies = await self._call("POST", "/chats", chat=False, body=body)
        upstream_id = payload.get("id")
        if not _sealable(upstream_id):
            log.info("upstream RequestChat answered an id we cannot use")
            raise UpstreamBadResponseError()
        assert isinstance(upstream_id, str)
        return ChatCreated(upstream_id, cookies)

    async def get_chat(
        self, upstream_id: str, cookies: Mapping[str, str] | None = None
    ) -> tuple[ChatState, Answer]:
        payload, set_cookies = await self._call(
            "GET", self._chat_path(upstream_id), chat=True, cookies=cookies
        )
        try:
            state = normalise_chat(payload.get("chat"))
        except MalformedSnapshotError:
            raise UpstreamBadResponseError() from None
        return state, Answer(set_cookies)

    async def get_messages(
        self, upstream_id: str, index: int, cookies: Mapping[str, str] | None = None
    ) -> tuple[list[TranscriptEntry], Answer]:
        """Messages with index >= `index`. Always explicit: the index-less form moves a hidden
        cursor shared by every caller, and `index=0` returns nothing on some servers."""
        payload, set_cookies = await self._call(
            "GET",
            self._chat_path(upstream_id) + "/messages",
            chat=True,
            cookies=cookies,
            params={"index": str(max(1, index))},
        )
        try:
            messages = normalise_messages(payload.get("messages"))
        except MalformedSnapshotError:
            raise UpstreamBadResponseError() from None
        return messages, Answer(set_cookies)

    async def send(
        self,
        upstream_id: str,
        operation: str,
        *,
        text: str | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> Answer:
        body: dict[str, Any] = {"operationName": operation}
        if text is not None:
            body["text"] = text
        _, set_cookies = await self._call(
            "POST", self._chat_path(upstream_id), chat=True, cookies=cookies, body=body
        )
        return Answer(set_cookies)

    async def probe(self, *, wait_s: float) -> bool:
        """True when the upstream answers HTTP at all (any status): used by readiness.

        One probe for the whole process at a time, at most one per readiness window (its
        result is reused meanwhile), waiting for a read slot like every read: however many
        readiness checks arrive, they cost the upstream one request and a customer's call no
        slot and no connection. A caller waits for the answer at most `wait_s` (False after
        that: the upstream is not answering promptly); the probe itself goes on, owned here."""
        at, answered = self._probed
        if self.health.clock() - at < self.health.ready_window_s:
            return answered
        if self._probe is None:
            self._probe = asyncio.create_task(self._probe_once(), name="upstream-probe")
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(self._probe)
        except TimeoutError:
            return False

    async def _probe_once(self) -> bool:
        answered = False
        try:
            async with asyncio.timeout(self._deadline_s + 1), self._read_slots:
                await self._wire.exchange(
                    "GET",
                    self._base + "/chats/readiness-probe",
                    {"ContactCenterId": self._contact_center_id.get_secret_value()},
                    None,
                )
            answered = True
        except (TimeoutError, OSError, AnswerTooLargeError):
            pass
        finally:
            self._probe = None
            self._probed = (self.health.clock(), answered)
        if answered:
            self.health.succeeded(self._probed[0])
        return answered
