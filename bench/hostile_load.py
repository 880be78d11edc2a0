"""The load of the memory budget scenario (bench/hostile.py): attackers and honest customers.

Attackers come through the trusted proxy (the load generator's 127.0.0.1, with
`X-Forwarded-For`) from a handful of IPv4 addresses and from many addresses of one IPv6 /64,
and send what the issue 18 review found could make a process hold memory: bodies near and over
`BFF_MAX_BODY_BYTES` to routed and unrouted paths (Content-Length and chunked), random
Idempotency-Keys on sends and RequestChats, requests to paths no route takes, the largest
left messages while the operator's receiver is down, and chats created and never read.

Honest customers connect from addresses of their own (127.0.0.x, untrusted, so the peer is
their address) and chat at human pace as the widget does: a RequestChat and every send with
an Idempotency-Key, the chat's stream open throughout, a read now and then, Complete.

It must not measure the server (bench/hostile.py does): it only counts its own answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bench.agents import request_chat_body
from bench.soak import Tally
from bench.wire import Connection, HttpError, SseEvent, Viewer, split_url

ATTACKERS_V4 = tuple(f"203.0.113.{n}" for n in range(1, 9))
ATTACKER_V6_PREFIX = "2001:db8:bad:64"  # one /64: 2001:db8:bad:64::/64
CHUNK = 16 * 1024
# A left message as large as the limits allow (about 30 KB of UTF-8 under the 32 KiB body
# limit), as tests/e2e/test_outbox_flood.py leaves them.
BIG_LEFT_MESSAGE = {
    "nickname": "Mallory",
    "email": "mallory@example.com",
    "subject": "s" * 256,
    "text": "x" * 4000,
    "userData": {f"k{n:02d}": "v" * 1000 for n in range(24)},
}


def attacker_address(v6_share: float = 0.5) -> str:
    """One of the IPv4 attackers, or a random address of the attacker's /64."""
    if random.random() >= v6_share:
        return random.choice(ATTACKERS_V4)
    host = ":".join(f"{random.getrandbits(16):x}" for _ in range(4))
    return f"{ATTACKER_V6_PREFIX}:{host}"


@dataclass
class Pace:
    """How many of each actor run, and the pause (uniform in [a, b] s) between their requests."""

    big_bodies: int = 2
    keyed: int = 2
    unrouted: int = 1
    offline: int = 1
    honest: int = 4
    pause_s: tuple[float, float] = (0.05, 0.25)
    honest_gap_s: float = 8.0


@dataclass
class Honest:
    """What the honest customers saw: answers by status, echo latencies, stream outcomes."""

    tally: Tally = field(default_factory=Tally)
    sent_at: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    chats: int = 0
    stream_connects: int = 0
    stream_failures: int = 0

    def on_message(self, event: SseEvent) -> None:
        with contextlib.suppress(ValueError, TypeError):
            text = json.loads(event.data).get("text") or ""
            if text in self.sent_at:
                self.received.setdefault(text, event.at)

    def echoes(self) -> tuple[list[float], int]:
        """(latencies of the echoes that arrived, sends taken whose echo never did)."""
        arrived = [self.received[t] - s for t, s in self.sent_at.items() if t in self.received]
        return arrived, len(self.sent_at) - len(arrived)


class HostileLoad:
    """Every actor at once until `stop_at`; `attacking` is False during the warm-up."""

    def __init__(self, url: str, pace: Pace, limit_bytes: int) -> None:
        self.url = url
        self.host, self.port = split_url(url)
        self.pace = pace
        self.limit = limit_bytes
        self.hostile = Tally()
        self.honest = Honest()
        self.attacker_chats: list[str] = []
        self.addresses: set[str] = set()
        self.stop_at = float("inf")
        self.attacking = False

    # -- attackers ------------------------------------------------------------------------

    def _headers(self, key: bool = True) -> dict[str, str]:
        address = attacker_address()
        self.addresses.add(address)
        headers = {"X-Forwarded-For": address}
        if key:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return headers

    async def _pause(self) -> None:
        await asyncio.sleep(random.uniform(*self.pace.pause_s))

    async def big_bodies(self) -> None:
        """Bodies just under, just over and far over the limit, to routed and unrouted paths,
        with a Content-Length or chunked, each with a random Idempotency-Key."""
        sizes = (self.limit - 512, self.limit + 1, 1 << 20, 16 << 20)
        while time.monotonic() < self.stop_at:
            handle = random.choice(self.attacker_chats) if self.attacker_chats else "x" * 60
            path = random.choice(
                ["/api/v2/chats", f"/api/v2/chats/{handle}", "/api/v2/chats/x/y/z", "/api/v2/z"]
            )
            size, chunked = random.choice(sizes), random.random() < 0.5
            status = await self._raw_body(path, size, chunked)
            what = f"big body {'chunked' if chunked else 'sized'}"
            if status is None:
                self.hostile.actions[f"{what}: reset before an answer"] += 1
            else:
                self.hostile.answer(what, status)
            self.hostile.actions["big bodies"] += 1
            await self._pause()

    async def _raw_body(self, path: str, size: int, chunked: bool) -> int | None:
        """POST `size` bytes of a JSON array, as fast as the server takes them, stopping at
        its answer. The status, or None when the connection was reset before one arrived."""
        headers = self._headers()
        head = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
        payload = b"[" + b"1," * (CHUNK // 2 - 1) + b"1"
        reader, writer = await asyncio.open_connection(self.host, self.port)

        async def pump() -> None:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            while sent < size:
                part = payload[: min(CHUNK, size - sent)]
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
                sent += len(part)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

        sending = asyncio.create_task(pump())
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None
        except (OSError, TimeoutError, ValueError, IndexError):
            return None
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sending
            writer.transport.abort()

    async def keyed(self) -> None:
        """Random Idempotency-Keys: on RequestChat (chats created and never read) and on
        sends into those chats."""
        conn = Connection(self.url)
        try:
            while time.monotonic() < self.stop_at:
                if not self.attacker_chats or random.random() < 0.3:
                    status, body = await conn.request(
                        "POST", "/api/v2/chats", request_chat_body("Mallory"), self._headers()
                    )
                    self.hostile.answer("keyed create", status)
                    if status == 200:
                        self.attacker_chats.append(json.loads(body)["id"])
                        self.hostile.actions["chats created, never read"] += 1
                else:
                    handle = random.choice(self.attacker_chats[-50:])
                    text = {"operationName": "SendMessage", "text": uuid.uuid4().hex}
                    status, _ = await conn.request(
                        "POST", f"/api/v2/chats/{handle}", text, self._headers()
                    )
                    self.hostile.answer("keyed send", status)
                self.hostile.actions["random keys"] += 1
                await self._pause()
        finally:
            await conn.close()

    async def unrouted(self) -> None:
        """Paths and methods no route takes, with and without keys."""
        conn = Connection(self.url)
        try:
            while time.monotonic() < self.stop_at:
                junk = uuid.uuid4().hex
                path = random.choice(
                    [f"/api/v2/chats/{junk}/x/{junk}", f"/api/v2/{junk}", f"/api/{junk}/chats"]
                )
                method = random.choice(["POST", "POST", "PUT", "GET", "DELETE"])
                body = {"junk": junk} if method in ("POST", "PUT") else None
                status, _ = await conn.request(
                    method, path, body, self._headers(key=random.random() < 0.7)
                )
                self.hostile.answer("unrouted", status)
                self.hostile.actions["unrouted"] += 1
                await self._pause()
        finally:
            await conn.close()

    async def offline(self) -> None:
        """The largest left messages, each with a random key, to a receiver that is down."""
        conn = Connection(self.url)
        try:
            while time.monotonic() < self.stop_at:
                body = {**BIG_LEFT_MESSAGE, "text": uuid.uuid4().hex + "x" * 3968}
                status, _ = await conn.request(
                    "POST", "/api/v2/offline-messages", body, self._headers()
                )
                self.hostile.answer("offline", status)
                self.hostile.actions["left messages"] += 1
                await self._pause()
        finally:
            await conn.close()

    # -- honest customers -----------------------------------------------------------------

    async def customer(self, n: int) -> None:
        """One customer after another from 127.0.0.<10+n>: a chat with a few sends at human
        pace (each keyed, as the widget does), its stream open, a read now and then."""
        ip = f"127.0.0.{10 + n}"
        conn = Connection(self.url, local_ip=ip)
        honest, gap = self.honest, self.pace.honest_gap_s
        try:
            while time.monotonic() < self.stop_at:
                key = {"Idempotency-Key": str(uuid.uuid4())}
                status, body = await conn.request(
                    "POST", "/api/v2/chats", request_chat_body(f"Honest {n}"), key
                )
                self._honest("create", status, body)
                if status != 200:
                    await asyncio.sleep(2)
                    continue
                honest.chats += 1
                handle = json.loads(body)["id"]
                viewer = Viewer([self.url], handle, local_ip=ip, on_message=honest.on_message)
                viewer.start()
                path = f"/api/v2/chats/{handle}"
                for _ in range(random.randint(3, 6)):
                    await asyncio.sleep(random.uniform(gap / 2, gap * 1.5))
                    if time.monotonic() >= self.stop_at:
                        break
                    text = f"honest {n} {uuid.uuid4().hex[:12]}"
                    if self.attacking:
                        honest.sent_at[text] = time.time()
                    send = {"operationName": "SendMessage", "text": text}
                    status, body = await conn.request(
                        "POST", path, send, {"Idempotency-Key": str(uuid.uuid4())}
                    )
                    self._honest("send", status, body)
                    if status != 200:  # refused: no echo to wait for
                        honest.sent_at.pop(text, None)
                    if random.random() < 0.5:
                        status, body = await conn.request("GET", path + "/messages?index=1")
                        self._honest("read", status, body)
                done = {"operationName": "Complete"}
                status, body = await conn.request(
                    "POST", path, done, {"Idempotency-Key": str(uuid.uuid4())}
                )
                self._honest("complete", status, body)
                await asyncio.sleep(3)  # the last echo and the end arrive on the stream
                await viewer.stop()
                honest.stream_connects += viewer.connects
                honest.stream_failures += viewer.failures
        finally:
            await conn.close()

    def _honest(self, what: str, status: int, body: bytes = b"") -> None:
        """Counted while the attack runs (the warm-up before it is not under attack)."""
        if self.attacking:
            self.honest.tally.answer(what, status)
            if not 200 <= status < 300:
                self.honest.refused.append(
                    f"{what} -> {status} {body[:120].decode(errors='replace')}"
                )

    # -- running ---------------------------------------------------------------------------

    async def keep_going(self, actor: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """An actor tripping over something of its own starts again (as the soak's do)."""
        while time.monotonic() < self.stop_at:
            try:
                await actor()
            except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as error:
                self.hostile.actions[f"load generator errors ({type(error).__name__})"] += 1
                await asyncio.sleep(0.5)

    def attackers(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        p = self.pace
        return (
            [self.big_bodies] * p.big_bodies
            + [self.keyed] * p.keyed
            + [self.unrouted] * p.unrouted
            + [self.offline] * p.offline
        )
