"""chat-bff in this process, for the fast lane: the real `create_app()` over a memory bus, its
upstream the emulator reached through `httpx.ASGITransport`, and a hand-driven ASGI exchange
that can hold a stream open and then disconnect it.

The app's lifespan is not run, so no poller, heartbeat ticker or webhook worker starts: nothing
happens that the test did not do. A chat is "polled elsewhere": the test holds its lease, as
another instance's poller would, and commits to the bus what that poller would commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from app.bus import MemoryBus
from app.bus.chats import Fence
from app.config.settings import Settings
from app.core.handles import HandleCodec, chat_key
from app.core.service import ChatRef
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.main import create_app
from app.models import ChatState, TranscriptEntry
from app.runtime import Runtime

CENTER = "unit-center"
CHATTING = ChatState("Chatting", ("SendMessage",))


@dataclass
class Stack:
    app: FastAPI
    runtime: Runtime
    bus: MemoryBus
    emulator: Emulator
    codec: HandleCodec

    def chat(self, upstream_id: str) -> ChatRef:
        return ChatRef(self.codec.seal(upstream_id), upstream_id, chat_key(upstream_id))

    async def polled_elsewhere(self, ref: ChatRef, state: ChatState = CHATTING) -> Fence:
        """Hold the chat's lease (so no poller starts here) and commit its state."""
        fence = await self.bus.acquire(ref.key, 600)
        assert fence is not None
        await self.bus.commit(fence, state=state)
        return fence

    def http(self) -> httpx.AsyncClient:
        """For answers that complete (ASGITransport waits for the whole body)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("198.51.100.1", 40000)),
            base_url="http://testserver",
        )


def message(index: int) -> TranscriptEntry:
    return TranscriptEntry(index, {"index": index, "type": "Message", "text": f"message {index}"})


@asynccontextmanager
async def stack(bus: MemoryBus | None = None, **settings: Any) -> AsyncIterator[Stack]:
    emulator = Emulator(EmulatorConfig(contact_center_id=CENTER, idle_disconnect_s=0))
    the_bus = bus or MemoryBus()
    config = Settings(
        upstream_url="http://emulator.local",
        contact_center_id=SecretStr(CENTER),
        secret_key=SecretStr("u" * 40),
        **settings,
    )
    app = create_app(
        config,
        upstream_transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
        bus=the_bus,
    )
    runtime: Runtime = app.state.runtime
    try:
        yield Stack(app, runtime, the_bus, emulator, runtime.codec)
    finally:
        await runtime.upstream.aclose()
        await the_bus.aclose()
        await emulator.aclose()


@dataclass
class Exchange:
    """One request to the app driven by hand: the answer's status and body so far, and the
    client's side of the connection (`disconnect`)."""

    app: FastAPI
    path: str
    client: str
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int | None = None
    body: bytearray = field(default_factory=bytearray)
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    _gone: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _asked: bool = False

    async def open(self) -> int:
        """Send the request; return the status once the answer's head is out."""
        path, _, query = self.path.partition("?")
        headers = [(b"host", b"testserver")] + [
            (k.lower().encode(), v.encode()) for k, v in self.headers.items()
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": (self.client, 40000),
            "server": ("testserver", 80),
            "extensions": {},
        }
        self._task = asyncio.create_task(self.app(scope, self._receive, self._send))
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done():
            self._task.result()
        assert self.status is not None
        return self.status

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def finish(self) -> None:
        """Wait for the app to finish the answer by itself."""
        assert self._task is not None
        await self._task

    async def disconnect(self) -> None:
        self._gone.set()
        await self.finish()

    def json(self) -> Any:
        return json.loads(bytes(self.body))

    async def _receive(self) -> dict[str, Any]:
        # The request has no body; after it, only the client leaving is news.
        if self._asked:
            await self._gone.wait()
            return {"type": "http.disconnect"}
        self._asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self._started.set()
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
