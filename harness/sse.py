"""A browser-like SSE viewer: parses a chat-bff stream, keeps Last-Event-ID, and reconnects
to the next of several instances when a stream ends or breaks, as EventSource behind a load
balancer would. It must not know what the events mean beyond `end`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: Any
    id: str | None
    at: float


@dataclass
class Viewer:
    urls: list[str]
    handle: str
    name: str = "viewer"
    retry_s: float = 0.2
    events: list[Event] = field(default_factory=list)
    comments: int = 0
    connects: int = 0
    last_event_id: str | None = None
    retry_ms: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    headers: dict[str, str] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    @property
    def message_indices(self) -> list[int]:
        return [int(e.id) for e in self.events if e.event == "message" and e.id is not None]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.event == kind]

    def start(self) -> Viewer:
        self._task = asyncio.create_task(self._run(), name=self.name)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, predicate: Any, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} timed out; got {self.events[-5:]}")
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        turn = 0
        async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=60)) as http:
            while not self.ended.is_set():
                url = self.urls[turn % len(self.urls)]
                turn += 1
                with contextlib.suppress(httpx.HTTPError, OSError):
                    await self._stream(http, url)
                if not self.ended.is_set():
                    await asyncio.sleep(self.retry_s)

    async def _stream(self, http: httpx.AsyncClient, base: str) -> None:
        headers = {"Accept": "text/event-stream", **self.headers}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        path = f"{base}/api/v2/chats/{self.handle}/events"
        async with http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                return
            self.connects += 1
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    self._dispatch(fields)
                    fields = {}
                    if self.ended.is_set():
                        return
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data" and "data" in fields:
                    fields["data"] += "\n" + value
                else:
                    fields[name] = value

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields:
            self.retry_ms = int(fields["retry"])
        if "id" in fields:
            self.last_event_id = fields["id"]
        if "data" not in fields:
            return
        kind = fields.get("event", "message")
        self.events.append(
            Event(kind, json.loads(fields["data"]), fields.get("id"), time.monotonic())
        )
        if kind == "end":
            self.ended.set()
