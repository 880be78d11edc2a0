"""The connections under the upstream client: one HTTP exchange at a time, on a pool.

Owns connection pooling, TLS, per-phase timeouts and the translation of transport failures
into TimeoutError / ConnectionError. It knows nothing of the Customer Chat API (paths, ids,
error bodies); only `app/upstream/client.py` uses it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import certifi
import httpx


@dataclass(frozen=True, slots=True)
class Reply:
    """One upstream answer, as much of it as the client reads."""

    status: int
    body: bytes
    set_cookie: tuple[str, ...] = ()
    retry_after: str = ""


class AnswerTooLargeError(Exception):
    """The answer's body is larger than the wire's `max_body_bytes`; it was not read."""


class Wire(Protocol):
    """One HTTP exchange with the upstream, on a pool of keep-alive connections.

    Guarantees: `exchange` returns whatever HTTP answer came back, any status; it raises
    TimeoutError when the upstream took longer than the configured timeouts, OSError
    (ConnectionError) when it could not be reached or dropped the connection, and
    AnswerTooLargeError as soon as the body exceeds `max_body_bytes` (announced or read so
    far: no more of it is read, and its connection is not reused). It keeps no cookies (they
    belong to each chat) and follows no redirects."""

    async def exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Reply: ...

    async def aclose(self) -> None: ...


_CHUNK = 65_536


class AiohttpWire:
    """The network wire: aiohttp's connection pool and C parser.

    Not httpx's own transport: httpcore's pool polls every pooled socket for readability on
    each request it assigns (encode/httpcore#928); with a few dozen keep-alive connections
    that costs about 2 ms of CPU per upstream call, which a process polling thousands of chats
    cannot afford. This does the same work in about a fifth of it.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        timeout_s: float,
        connect_timeout_s: float,
        max_body_bytes: int,
    ) -> None:
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            tls = ssl.create_default_context(cafile=certifi.where())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=tls),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
            )
        return self._session

    async def exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        try:
            async with self._open().request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as answer:
                limit = self._max_body_bytes
                if (answer.content_length or 0) > limit:
                    raise AnswerTooLargeError()
                received = bytearray()
                async for chunk in answer.content.iter_chunked(_CHUNK):
                    received += chunk
                    if len(received) > limit:
                        raise AnswerTooLargeError()
                return Reply(
                    answer.status,
                    bytes(received),
                    tuple(answer.headers.getall("Set-Cookie", ())),
                    answer.headers.get("Retry-After", ""),
                )
        except aiohttp.ClientError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise ConnectionError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxWire:
    """Any httpx transport as the wire: the demo reaches its in-process emulator through
    `httpx.ASGITransport`."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_body_bytes: int,
    ) -> None:
        self._transport = transport
        self._max_body_bytes = max_body_bytes
        self._timeouts = {"timeout": httpx.Timeout(timeout_s, connect=connect_timeout_s).as_dict()}

    async def exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        request = httpx.Request(
            method, url, content=body, headers=headers, extensions=self._timeouts
        )
        received = bytearray()
        try:
            response = await self._transport.handle_async_request(request)
            try:
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) > self._max_body_bytes:
                        raise AnswerTooLargeError()
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise TimeoutError() from exc
        except httpx.HTTPError as exc:
            raise ConnectionError(type(exc).__name__) from exc
        return Reply(
            response.status_code,
            bytes(received),
            tuple(response.headers.get_list("set-cookie")),
            response.headers.get("retry-after", ""),
        )

    async def aclose(self) -> None:
        await self._transport.aclose()
