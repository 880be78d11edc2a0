"""Load-generator pieces shared by scenarios: chats created through chat-bff or directly
upstream, agents that talk at random moments, and baseline viewers that poll the upstream
directly like the platform's sample client."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import CONTACT_CENTER_ID, Background
from bench.wire import Connection

UPSTREAM_HEADERS = {"ContactCenterId": CONTACT_CENTER_ID}


def request_chat_body(nickname: str) -> dict[str, str]:
    return {"operationName": "RequestChat", "nickname": nickname, "subject": "bench"}


async def create_many(
    urls: list[str], emulator_url: str, nicknames: list[str], concurrency: int = 32
) -> list[tuple[str, str]]:
    """Chats created through chat-bff (round-robin over `urls`), as a customer's page does:
    (handle, upstream id) per nickname, in order. Nicknames must be unique: they map the
    handles chat-bff answered to the emulator's chat ids."""
    handles: dict[str, str] = {}
    queue = list(enumerate(nicknames))

    async def worker(k: int) -> None:
        conn = Connection(urls[k % len(urls)])
        try:
            while queue:
                _, nickname = queue.pop()
                created = await conn.json("POST", "/api/v2/chats", request_chat_body(nickname))
                handles[nickname] = created["id"]
        finally:
            await conn.close()

    await asyncio.gather(*(worker(k) for k in range(min(concurrency, len(nicknames)))))
    emulator = Connection(emulator_url)
    by_nickname = {v: k for k, v in (await emulator.json("GET", "/_bench/chats")).items()}
    await emulator.close()
    return [(handles[n], by_nickname[n]) for n in nicknames]


async def create_many_upstream(
    emulator_url: str, nicknames: list[str], concurrency: int = 32
) -> list[str]:
    """Chats created directly upstream, as the platform's sample client does."""
    ids: dict[str, str] = {}
    queue = list(nicknames)

    async def worker() -> None:
        conn = Connection(emulator_url)
        try:
            while queue:
                nickname = queue.pop()
                ids[nickname] = await create_upstream(conn, nickname)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(nicknames)))))
    return [ids[n] for n in nicknames]


async def create_upstream(upstream: Connection, nickname: str) -> str:
    """A chat created directly upstream (as the platform's sample client does): its id."""
    status, body = await upstream.request(
        "POST", "/api/v2/chats", request_chat_body(nickname), headers=UPSTREAM_HEADERS
    )
    assert status == 200, body
    upstream_id: str = json.loads(body)["id"]
    return upstream_id


@dataclass
class Said:
    chat: str
    index: int
    utc_ms: int
    text: str


@dataclass
class Talker(Background):
    """Agents posting into `chats` at random moments (exponential gaps, mean `mean_gap_s`),
    through the emulator's batch path, ticking every `tick_s`."""

    emulator_url: str
    chats: list[str]
    mean_gap_s: float
    uniform: bool = False
    """Gaps uniform in [mean/2, 3*mean/2] (never a long silence) instead of exponential."""
    tick_s: float = 0.02
    prefix: str = "bench"
    said: list[Said] = field(default_factory=list)
    failed: int = 0
    _task: asyncio.Task[None] | None = None
    _seq: int = 0

    def _gap(self) -> float:
        if self.uniform:
            return random.uniform(self.mean_gap_s / 2, self.mean_gap_s * 1.5)
        return random.expovariate(1 / self.mean_gap_s)

    async def _run(self) -> None:
        conn = Connection(self.emulator_url)
        now = time.monotonic()
        due = {c: now + self._gap() for c in self.chats}
        try:
            while True:
                await asyncio.sleep(self.tick_s)
                now = time.monotonic()
                ready = [c for c, at in due.items() if at <= now]
                if not ready:
                    continue
                items = []
                for chat in ready:
                    due[chat] = now + self._gap()
                    self._seq += 1
                    items.append({"chat": chat, "text": f"{self.prefix}:{self._seq}"})
                answer = await conn.json("POST", "/_bench/say", {"items": items})
                for item, result in zip(items, answer["results"], strict=True):
                    if result["index"] is None:
                        self.failed += 1
                        continue
                    self.said.append(
                        Said(item["chat"], result["index"], result["utcTime"], item["text"])
                    )
        finally:
            await conn.close()


@dataclass
class DirectPoller(Background):
    """A viewer without chat-bff: polls the upstream itself every `interval_s` (random phase),
    for messages with its own index and, if `with_state`, for the chat resource."""

    upstream_url: str
    chat: str
    interval_s: float
    with_state: bool = True
    on_message: object = None
    cursor: int = 0
    polls: int = 0
    errors: int = 0
    _task: asyncio.Task[None] | None = None

    async def poll_once(self, conn: Connection) -> None:
        path = f"/api/v2/chats/{self.chat}"
        if self.with_state:
            await conn.request("GET", path, headers=UPSTREAM_HEADERS)
        status, body = await conn.request(
            "GET", f"{path}/messages?index={self.cursor + 1}", headers=UPSTREAM_HEADERS
        )
        self.polls += 1
        if status != 200:
            self.errors += 1
            return
        received = time.time()
        for message in json.loads(body).get("messages", []):
            index = int(message["index"])
            if index > self.cursor:
                self.cursor = index
                if callable(self.on_message):
                    self.on_message(self.chat, message, received)

    async def _run(self) -> None:
        conn = Connection(self.upstream_url)
        try:
            await asyncio.sleep(random.uniform(0, self.interval_s))
            next_at = time.monotonic()
            while True:
                try:
                    await self.poll_once(conn)
                except (OSError, asyncio.IncompleteReadError):
                    self.errors += 1
                next_at += self.interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await conn.close()


@dataclass
class AppReader(Background):
    """A mobile app on chat-bff: long-polls `messages?index=N&wait=S`; `seen(message, at)` is
    called for each new message with the time its answer arrived."""

    url: str
    handle: str
    wait_s: float = 25.0
    seen: Callable[[dict[str, Any], float], None] | None = None
    cursor: int = 0
    reads: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = Connection(self.url)
        path = f"/api/v2/chats/{self.handle}/messages"
        try:
            while True:
                asked = time.monotonic()
                try:
                    status, body = await conn.request(
                        "GET", f"{path}?index={self.cursor + 1}&wait={self.wait_s:g}"
                    )
                except (OSError, asyncio.IncompleteReadError):
                    await asyncio.sleep(1)
                    continue
                self.reads += 1
                received = time.time()
                messages = json.loads(body).get("messages", []) if status == 200 else []
                for message in messages:
                    self.cursor = max(self.cursor, int(message["index"]))
                    if self.seen is not None:
                        self.seen(message, received)
                if not messages and time.monotonic() - asked < 1:
                    await asyncio.sleep(1)  # an error or an ended chat answers at once
        finally:
            await conn.close()
