"""Abuse limits hold for the fleet, not per instance: chat creation and sends per client IP,
open streams per chat and per client IP, counted on a real Redis Cluster across three
instances behind a trusted proxy (client IPs from X-Forwarded-For). Stream counts of a
SIGKILLed instance stop counting within the stream-count ttl."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from itertools import count

import httpx
import pytest

from harness.servers import ServerProcess
from harness.topologies import ClusterGroup
from tests.fleet.fleet import Fleet

COUNT_TTL_S = 3.0
LIMITS = {
    "BFF_CHAT_CREATE_BURST": "3",
    "BFF_CHAT_CREATE_PER_MINUTE": "1",
    "BFF_SEND_BURST": "4",
    "BFF_SEND_PER_MINUTE": "1",
    "BFF_MAX_STREAMS_PER_CHAT": "4",
    "BFF_MAX_STREAMS_PER_IP": "6",
    "BFF_TRUSTED_PROXIES": "127.0.0.1/32",
    "BFF_STREAM_COUNT_TTL_S": str(COUNT_TTL_S),
}
_ips = count(1)


def new_ip() -> str:
    return f"198.51.100.{next(_ips)}"


@pytest.fixture
def limited_fleet(redis_cluster: ClusterGroup, emulator: ServerProcess) -> Iterator[Fleet]:
    group = Fleet(redis_cluster.url, emulator.url, 3, topology=redis_cluster, **LIMITS)
    yield group
    group.stop()


def create(url: str, ip: str) -> httpx.Response:
    body = {"operationName": "RequestChat", "nickname": "Limits", "subject": "limits"}
    return httpx.post(f"{url}/api/v2/chats", json=body, headers={"X-Forwarded-For": ip}, timeout=15)


class Streams:
    """SSE streams held open by the test: each one counts until it is closed."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=60))
        self.open: list[tuple[str, contextlib.AsyncExitStack]] = []

    async def open_one(self, url: str, handle: str, ip: str) -> int:
        own = contextlib.AsyncExitStack()
        response = await own.enter_async_context(
            self.http.stream(
                "GET", f"{url}/api/v2/chats/{handle}/events", headers={"X-Forwarded-For": ip}
            )
        )
        if response.status_code != 200:
            assert response.headers.get("retry-after"), "a 429 says when to come back"
            await own.aclose()
        else:
            self.open.append((url, own))
        return response.status_code

    async def close_one(self, url: str) -> None:
        for i, (where, own) in enumerate(self.open):
            if where == url:
                del self.open[i]
                await own.aclose()
                return
        raise AssertionError("no stream open there")

    async def aclose(self) -> None:
        for _, own in self.open:
            with contextlib.suppress(Exception):
                await own.aclose()
        await self.http.aclose()


async def test_limits_hold_across_the_fleet(limited_fleet: Fleet) -> None:
    fleet = limited_fleet
    urls = fleet.urls
    # Chat creation: a burst of 3 per IP for the whole fleet, whichever instance is asked.
    ip = new_ip()
    statuses = [create(urls[n % 3], ip).status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert create(urls[1], new_ip()).status_code == 200  # another client is unaffected

    # Sends: a burst of 4 per IP.
    sender = new_ip()
    handle = create(urls[0], sender).json()["id"]
    sent = [
        httpx.post(
            f"{urls[n % 3]}/api/v2/chats/{handle}",
            json={"operationName": "SendMessage", "text": f"line {n}"},
            headers={"X-Forwarded-For": sender},
            timeout=15,
        ).status_code
        for n in range(5)
    ]
    assert sent == [200, 200, 200, 200, 429]

    streams = Streams()
    try:
        # Streams per chat: 4 for the fleet, from four clients on three instances.
        chat = create(urls[0], new_ip()).json()["id"]
        opened = [await streams.open_one(urls[n % 3], chat, new_ip()) for n in range(5)]
        assert opened == [200, 200, 200, 200, 429]
        # One closes: its place comes free for the fleet promptly.
        await streams.close_one(urls[1])
        assert await eventually_opens(streams, urls[2], chat, within_s=2)
        assert await streams.open_one(urls[0], chat, new_ip()) == 429

        # Streams per client IP: 6 for the fleet, over two chats.
        viewer = new_ip()
        others = [create(urls[1], new_ip()).json()["id"] for _ in range(2)]
        opened = [await streams.open_one(urls[n % 3], others[n % 2], viewer) for n in range(7)]
        assert opened == [200] * 6 + [429]

        # SIGKILL an instance holding streams of `chat`: they stop counting within the ttl.
        victim = fleet.instances[2]
        held = sum(1 for where, _ in streams.open if where == victim.url)
        assert held > 0
        victim.kill()
        streams.open = [(w, s) for w, s in streams.open if w != victim.url]
        for _ in range(2):  # the two streams of `chat` it held
            assert await eventually_opens(streams, urls[0], chat, within_s=COUNT_TTL_S + 4)
        assert await streams.open_one(urls[1], chat, new_ip()) == 429  # and no more than 4
    finally:
        await streams.aclose()


async def eventually_opens(streams: Streams, url: str, handle: str, within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        if await streams.open_one(url, handle, new_ip()) == 200:
            return True
        await asyncio.sleep(0.2)
    return False
