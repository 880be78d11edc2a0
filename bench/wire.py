"""A small HTTP/1.1 client for load generation: keep-alive REST calls and SSE streams.

Browsers and apps keep connections open and parse streams incrementally; so does this client,
at a fraction of the CPU of a general-purpose client, so that on a 2-core machine the load
generator does not starve the servers it measures. It speaks only what uvicorn answers:
Content-Length or chunked bodies, `text/event-stream` framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.common import Background


class HttpError(Exception):
    pass


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    size_line = await reader.readline()
    if not size_line:
        raise asyncio.IncompleteReadError(b"", None)
    size = int(size_line.split(b";", 1)[0], 16)
    if size == 0:
        await reader.readline()
        return None
    data = await reader.readexactly(size + 2)
    return data[:-2]


def _request_bytes(
    method: str, path: str, host: str, body: bytes | None, headers: dict[str, str] | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class Connection:
    """One keep-alive connection; requests on it are sequential (like one browser socket)."""

    def __init__(self, url: str, *, local_ip: str | None = None) -> None:
        self.host, self.port = split_url(url)
        self.local_ip = local_ip
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        local = (self.local_ip, 0) if self.local_ip else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, local_addr=local
        )

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        raw = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self._writer is None:
                await self._connect()
            assert self._reader is not None
            assert self._writer is not None
            try:
                self._writer.write(_request_bytes(method, path, self.host, raw, headers))
                status, head = await _read_head(self._reader)
                if "content-length" in head:
                    data = await self._reader.readexactly(int(head["content-length"]))
                elif head.get("transfer-encoding") == "chunked":
                    parts = []
                    while (chunk := await _read_chunk(self._reader)) is not None:
                        parts.append(chunk)
                    data = b"".join(parts)
                else:
                    data = await self._reader.read()
                    await self.close()
                if head.get("connection") == "close":
                    await self.close()
                return status, data
            except (asyncio.IncompleteReadError, ConnectionError):
                # A keep-alive connection the server closed meanwhile: retry once on a new one.
                await self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await self.request(method, path, body, **kw)
        if status >= 400:
            raise HttpError(f"{method} {path}: {status} {data[:200]!r}")
        return json.loads(data)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@dataclass(slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None
    at: float
    """time.time() when the event's last line arrived."""


def _parse_block(block: str) -> tuple[SseEvent | None, bool]:
    """One SSE event block; (event or None, whether it was only a comment)."""
    kind, data, event_id, comment = "message", [], None, False
    for line in block.split("\n"):
        if not line:
            continue
        if line.startswith(":"):
            comment = True
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
    if not data and event_id is None:
        return None, comment
    return SseEvent(kind, "\n".join(data), event_id, time.time()), False


async def open_stream(
    url: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    local_ip: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """Connect and send the GET; returns the reader/writer and the status (headers read)."""
    host, port = split_url(url)
    local = (local_ip, 0) if local_ip else None
    reader, writer = await asyncio.open_connection(host, port, local_addr=local, limit=1 << 20)
    all_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})}
    writer.write(_request_bytes("GET", path, host, None, all_headers))
    status, _ = await _read_head(reader)
    return reader, writer, status


async def read_events(
    reader: asyncio.StreamReader,
    on_event: Callable[[SseEvent], bool | None],
    on_comment: Callable[[], None] | None = None,
) -> None:
    """Parse a chunked event stream until it ends; `on_event` returning True stops it."""
    buffer = ""
    while True:
        chunk = await _read_chunk(reader)
        if chunk is None:
            return
        buffer += chunk.decode("utf-8")
        if buffer.endswith("\r"):
            continue
        buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event, comment = _parse_block(block)
            if comment and on_comment is not None:
                on_comment()
            if event is not None and on_event(event):
                return


@dataclass
class Viewer(Background):
    """A browser tab on one chat: EventSource semantics (Last-Event-ID, reconnect to the next
    instance behind the load balancer). `urls` may be replaced while it runs."""

    urls: Sequence[str]
    handle: str
    retry_s: float = 0.2
    local_ip: str | None = None
    on_message: Callable[[SseEvent], None] | None = None
    indices: list[int] = field(default_factory=list)
    events: int = 0
    comments: int = 0
    connects: int = 0
    failures: int = 0
    last_event_id: str | None = None
    ended: bool = False
    first_event_at: float | None = None
    _task: asyncio.Task[None] | None = None
    _turn: int = 0

    async def _run(self) -> None:
        while not self.ended:
            url = self.urls[self._turn % len(self.urls)]
            self._turn += 1
            try:
                await self._stream(url)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                self.failures += 1
            if not self.ended:
                await asyncio.sleep(self.retry_s)

    async def _stream(self, url: str) -> None:
        headers = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        path = f"/api/v2/chats/{self.handle}/events"
        reader, writer, status = await open_stream(
            url, path, headers=headers, local_ip=self.local_ip
        )
        try:
            if status != 200:
                self.failures += 1
                return
            self.connects += 1
            await read_events(reader, self._event, self._comment)
        finally:
            writer.close()

    def _comment(self) -> None:
        self.comments += 1

    def _event(self, event: SseEvent) -> bool:
        self.events += 1
        if self.first_event_at is None:
            self.first_event_at = event.at
        if event.id is not None:
            self.last_event_id = event.id
        if event.event == "message" and event.id is not None:
            self.indices.append(int(event.id))
            if self.on_message is not None:
                self.on_message(event)
        if event.event == "end":
            self.ended = True
            return True
        return False
