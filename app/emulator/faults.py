"""Injected faults of the simulated upstream: what they are, which requests they hit, and the
canned answers they produce.

Owns the `Faults` settings, their matching and `remaining` countdown, and the bodies of
faulted answers. It must not touch chats or the request log, and must not do I/O itself
(the gate in front of the upstream routes sleeps, hangs or drops as told).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import httpx

ERROR_BODY_KINDS = ("json", "text", "html", "garbage", "empty")
FAULT_ROUTES = ("all", "read", "write")


@dataclass
class Faults:
    """Faults applied to upstream (/api/v2) requests; the default is no fault at all."""

    latency_ms: float = 0
    """Added before answering every matching request."""
    outage: bool = False
    """Answer 503 with an HTML body (and Retry-After if `retry_after_s` is set)."""
    error_status: int | None = None
    """Answer this HTTP status, with a body of `error_body_kind`."""
    error_body_kind: str = "json"
    """"json", "text", "html", "garbage" (not JSON, labelled application/json) or "empty"."""
    error_code: int = 4
    """The `statusCode` of a "json" error body (2: invalid state, 6: not found, 12: busy...)."""
    retry_after_s: int | None = None
    hang: bool = False
    """Never answer (until the client gives up or the emulator closes)."""
    routes: str = "all"
    """"all", "read" (GETs only) or "write" (POSTs only)."""
    remaining: int | None = None
    """Apply to this many matching requests, then clear automatically."""
    drop_connection: bool = False
    """Close the connection without a complete answer."""

    def __post_init__(self) -> None:
        if self.error_body_kind not in ERROR_BODY_KINDS:
            raise ValueError(f"error_body_kind must be one of {ERROR_BODY_KINDS}")
        if self.routes not in FAULT_ROUTES:
            raise ValueError(f"routes must be one of {FAULT_ROUTES}")
        if self.error_status is not None and not 100 <= self.error_status <= 599:
            raise ValueError("error_status must be an HTTP status (100..599)")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.remaining is not None and self.remaining < 0:
            raise ValueError("remaining must be >= 0")

    @property
    def active(self) -> bool:
        return bool(
            self.latency_ms > 0
            or self.outage
            or self.error_status is not None
            or self.hang
            or self.drop_connection
        )

    def matches(self, method: str) -> bool:
        if self.routes == "read":
            return method in ("GET", "HEAD")
        if self.routes == "write":
            return method == "POST"
        return True


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised inside the ASGI app to drop a connection without a complete answer.

    A server (uvicorn) closes the connection after the response head; an in-process
    `httpx.ASGITransport` client sees it as the transport error a real drop produces.
    """

    def __init__(self) -> None:
        super().__init__("emulator dropped the connection (fault injection)")


@dataclass(frozen=True)
class CannedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def html_page(status: int, title: str, detail: str = "") -> bytes:
    extra = f"<p>{detail}</p>" if detail else ""
    return f"<html><body><h1>{status} {title}</h1>{extra}</body></html>".encode()


_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"


def _canned(status: int, content_type: bytes | None, body: bytes) -> CannedResponse:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    return CannedResponse(status, headers, body)


def error_body(status: int, kind: str, code: int = 4) -> CannedResponse:
    """The answer of an `error_status` fault."""
    if kind == "json":
        body = json.dumps(
            {"statusCode": code, "statusMessage": "Internal error"}, separators=(",", ":")
        ).encode()
        return _canned(status, _JSON, body)
    if kind == "text":
        return _canned(status, _TEXT, b"Internal error")
    if kind == "html":
        return _canned(status, _HTML, html_page(status, "Error"))
    if kind == "garbage":
        return _canned(status, _JSON, b"\x00\xff<<not json at all {")
    return _canned(status, None, b"")


def fault_response(faults: Faults) -> CannedResponse | None:
    """The canned answer for an outage or error fault, or None when the request passes on."""
    if faults.outage:
        response = _canned(503, _HTML, html_page(503, "Service Unavailable"))
    elif faults.error_status is not None:
        response = error_body(faults.error_status, faults.error_body_kind, faults.error_code)
    else:
        return None
    if faults.retry_after_s is not None:
        response.headers.append((b"retry-after", str(faults.retry_after_s).encode()))
    return response


def plain_text(status: int, text: str) -> CannedResponse:
    return _canned(status, _TEXT, text.encode())


def html_error(status: int, title: str, detail: str = "") -> CannedResponse:
    return _canned(status, _HTML, html_page(status, title, detail))


def json_error(status: int, code: int, message: str) -> CannedResponse:
    body = json.dumps({"statusCode": code, "statusMessage": message}).encode()
    return _canned(status, _JSON, body)


class FaultSwitch:
    """The current faults; hands out the faults each request must suffer."""

    def __init__(self) -> None:
        self._faults = Faults()

    @property
    def current(self) -> Faults:
        return replace(self._faults)

    def set(self, faults: Faults) -> None:
        self._faults = replace(faults)

    def clear(self) -> None:
        self._faults = Faults()

    def take(self, method: str) -> Faults | None:
        """The faults for one request (None: no fault), counting down `remaining`."""
        faults = self._faults
        if not faults.active or not faults.matches(method):
            return None
        if faults.remaining is not None:
            if faults.remaining <= 0:
                self.clear()
                return None
            faults.remaining -= 1
            if faults.remaining == 0:
                self.clear()
        return faults
