"""Shared fixtures: a real emulator process and a real chat-bff process on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import ServerProcess, start_bff, start_emulator

# Real Redis topologies (Sentinel, Cluster), shared by the bus and fleet suites.
from tests.topologies import (  # noqa: F401
    fresh_redis_cluster,
    fresh_sentinel_group,
    redis_cluster,
    sentinel_group,
)


@pytest.fixture(scope="session")
def emulator() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "0.3", "--agent-reply-delay", "0.2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    # Generous limits: the suite creates many chats from one IP on purpose.
    server = start_bff(
        emulator.url,
        BFF_CHAT_CREATE_PER_MINUTE="60000",
        BFF_CHAT_CREATE_BURST="10000",
        BFF_SEND_PER_MINUTE="60000",
        BFF_SEND_BURST="10000",
    )
    yield server
    server.stop()


class EmulatorControl:
    """The emulator's control API: counters, request log, faults."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/_emulator", timeout=5)

    def count(self, method: str | None = None) -> int:
        """Upstream requests so far; with `method`, only those (the pollers' GETs run in the
        background all the time, so "reached no upstream" is judged on writes)."""
        stats = self.http.get("/stats").json()
        if method is None:
            total: int = stats["requests"]
            return total
        return sum(n for route, n in stats["by_route"].items() if route.startswith(method + " "))

    def requests(self) -> list[dict[str, object]]:
        data = self.http.get("/requests").json()
        return list(data["requests"] if isinstance(data, dict) else data)

    def reset(self) -> None:
        self.http.post("/reset").raise_for_status()

    def faults(self, **faults: object) -> None:
        self.http.put("/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/faults").raise_for_status()

    def chat(self, upstream_id: str) -> dict[str, object]:
        data: dict[str, object] = self.http.get(f"/chats/{upstream_id}").json()
        return data

    def agent_say(self, upstream_id: str, text: str) -> int:
        index: int = self.http.post(f"/chats/{upstream_id}/agent/say", json={"text": text}).json()[
            "index"
        ]
        return index


@pytest.fixture
def control(emulator: ServerProcess) -> Iterator[EmulatorControl]:
    ctl = EmulatorControl(emulator.url)
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()
    ctl.http.close()


@pytest.fixture
def client(bff: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bff.url, timeout=15) as http:
        yield http
