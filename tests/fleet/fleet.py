"""A fleet on loopback: several `chat-bff serve` processes on one Redis and one emulator, its
settings, and what the fleet tests do with it (open a chat through one instance, have the
agent talk, watch it from every instance and check each viewer got the whole transcript)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable

import httpx

from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff
from harness.sse import Viewer
from harness.topologies import Topology

FLEET_ENV = {
    "BFF_LEASE_TTL_S": "1.5",
    "BFF_POLL_FLOOR_S": "0.2",
    "BFF_POLL_CEILING_S": "0.5",
    "BFF_POLL_BACKOFF_MAX_S": "4",
    "BFF_SHUTDOWN_GRACE_S": "3",
    "BFF_CHAT_CREATE_BURST": "1000",
    "BFF_SEND_BURST": "1000",
}


class Fleet:
    def __init__(
        self,
        redis_url: str,
        upstream_url: str,
        size: int,
        *,
        redis: RedisServer | None = None,
        topology: Topology | None = None,
        **env: str,
    ) -> None:
        self.redis_url = redis_url
        self.upstream_url = upstream_url
        self.prefix = f"fleet-{secrets.token_hex(4)}"
        self.env = {**FLEET_ENV, **env}
        self.instances: list[ServerProcess] = []
        self.topology = topology
        if redis is not None:
            self.redis = redis
        for _ in range(size):
            self.add()

    def add(self) -> ServerProcess:
        server = start_bff(
            self.upstream_url,
            BFF_REDIS_URL=self.redis_url,
            BFF_REDIS_PREFIX=self.prefix,
            **self.env,
        )
        self.instances.append(server)
        return server

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.instances]

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.instances if s.proc is not None and s.proc.poll() is None]

    def metric(self, server: ServerProcess, name: str, labels: str = "") -> float:
        """One sample of `name` (with exactly these `labels`, e.g. `{operation="x"}`) in the
        server's /metrics; 0 when absent."""
        text = httpx.get(server.url + "/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def pollers(self, server: ServerProcess) -> int:
        return int(self.metric(server, "bff_pollers"))

    def holder(self) -> ServerProcess:
        holders = [s for s in self.alive() if self.pollers(s) > 0]
        assert len(holders) == 1, f"expected one lease holder, found {len(holders)}"
        return holders[0]

    def stop(self) -> None:
        for server in self.instances:
            server.kill()
        if self.topology is not None:
            # A topology a test broke on purpose may refuse; it is thrown away anyway.
            with contextlib.suppress(Exception):
                self.topology.delete_prefix(self.prefix)


# A delivery worker's claim outlives a request: 2 x timeout + 5 s.
WEBHOOK_ENV = {"BFF_WEBHOOK_TIMEOUT_S": "1", "BFF_WEBHOOK_RETRY_MIN_S": "0.2"}


def chat_requests(control: EmulatorControl, upstream_id: str) -> list[dict[str, object]]:
    return [r for r in control.requests() if r.get("chat_id") == upstream_id]


def open_chat(fleet: Fleet, control: EmulatorControl, instance: int = 0) -> tuple[str, str]:
    """A new chat requested through one instance: (handle, upstream id). The id is the one
    chat the emulator gained: the last polled id may be another test's chat, still polled by
    the session's servers."""
    known = {c["id"] for c in control.http.get("/chats").json()["chats"]}
    with httpx.Client(base_url=fleet.urls[instance], timeout=10) as client:
        handle = start_chat(client)
    (upstream_id,) = {c["id"] for c in control.http.get("/chats").json()["chats"]} - known
    return handle, str(upstream_id)


def transcript(control: EmulatorControl, upstream_id: str) -> list[int]:
    view = control.chat(upstream_id)
    entries = view["transcript"]
    assert isinstance(entries, list)
    return [int(m["index"]) for m in entries]


async def talk(control: EmulatorControl, upstream_id: str, count: int, gap_s: float) -> None:
    for n in range(count):
        await asyncio.to_thread(control.agent_say, upstream_id, f"agent line {n}")
        await asyncio.sleep(gap_s)


def viewers_for(fleet: Fleet, handle: str, per_instance: int) -> list[Viewer]:
    urls = fleet.urls
    viewers = []
    for i in range(len(urls)):
        rotated = urls[i:] + urls[:i]
        viewers += [Viewer(rotated, handle, name=f"v{i}.{j}") for j in range(per_instance)]
    return viewers


async def assert_complete(
    viewers: list[Viewer], control: EmulatorControl, upstream_id: str, timeout_s: float = 20
) -> list[int]:
    expected = transcript(control, upstream_id)
    for viewer in viewers:
        await viewer.wait_for(lambda v: len(v.message_indices) >= len(expected), timeout_s)
        assert viewer.message_indices == expected, viewer.name
    return expected


async def with_viewers(viewers: list[Viewer], body: Callable[[], Awaitable[None]]) -> None:
    for viewer in viewers:
        viewer.start()
    try:
        await body()
    finally:
        for viewer in viewers:
            await viewer.stop()
