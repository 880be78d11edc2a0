"""The shipped nginx config, on Debian's nginx, in front of three chat-bff replicas sharing a
Redis on loopback: it passes `nginx -t`, streams SSE unbuffered, compresses the widget, keeps
chat handles out of its access log, and lets clients ride out a replica's SIGTERM under load
with nothing lost or repeated."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import free_port, start_bff, start_emulator
from harness.sse import Viewer
from tests.components import missing_component
from tests.deploy.nginx import Nginx, check, render

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REPLICA_ENV = {
    "BFF_LEASE_TTL_S": "1.5",
    "BFF_POLL_FLOOR_S": "0.2",
    "BFF_POLL_CEILING_S": "0.5",
    "BFF_SHUTDOWN_GRACE_S": "2",
    "BFF_CHAT_CREATE_BURST": "1000",
    "BFF_SEND_BURST": "1000",
    # nginx is the only proxy: the replicas believe its X-Forwarded-For.
    "BFF_TRUSTED_PROXIES": "127.0.0.1/32",
}


def test_shipped_config_passes_nginx_t(tmp_path: Path) -> None:
    result = check(render(tmp_path, ["127.0.0.1:1", "127.0.0.1:2"], free_port()))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class Edge:
    """nginx, three replicas, a private Redis and a private emulator."""

    def __init__(self, folder: Path) -> None:
        try:
            self.redis = RedisServer().start()
        except FileNotFoundError:
            missing_component("redis-server is not installed")
        # The agents speak only when the tests say so (no automatic replies), so a transcript
        # read after the load stops is final.
        self.emulator = start_emulator("--agent-join-delay", "0.2", "--agent-reply-delay", "3600")
        self.control = EmulatorControl(self.emulator.url)
        env = {**REPLICA_ENV, "BFF_REDIS_URL": self.redis.url}
        self.replicas = [start_bff(self.emulator.url, **env) for _ in range(3)]
        self.nginx = Nginx(
            folder, [f"127.0.0.1:{r.port}" for r in self.replicas], free_port()
        ).start()

    def open_chat(self, http: httpx.Client) -> tuple[str, str]:
        """A chat requested through nginx: (handle, upstream id)."""
        before = {c["id"] for c in self.control.http.get("/chats").json()["chats"]}
        answer = http.post(
            "/api/v2/chats",
            json={"operationName": "RequestChat", "nickname": "Edge", "subject": "nginx"},
        )
        assert answer.status_code == 200, answer.text
        after = {c["id"] for c in self.control.http.get("/chats").json()["chats"]}
        (upstream_id,) = after - before
        return answer.json()["id"], upstream_id

    def transcript(self, upstream_id: str) -> list[int]:
        entries = self.control.chat(upstream_id)["transcript"]
        assert isinstance(entries, list)
        return [int(m["index"]) for m in entries]

    def stop(self) -> None:
        self.nginx.stop()
        for replica in self.replicas:
            replica.stop()
        self.emulator.stop()
        self.redis.stop()
        self.control.http.close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    fleet = Edge(tmp_path_factory.mktemp("nginx"))
    yield fleet
    fleet.stop()


def test_widget_is_compressed_and_health_passes(edge: Edge) -> None:
    with httpx.Client(base_url=edge.nginx.url, timeout=10) as http:
        widget = http.get("/static/widget.js", headers={"Accept-Encoding": "gzip"})
        assert widget.status_code == 200
        assert widget.headers["content-encoding"] == "gzip"
        assert http.get("/healthz").status_code == 200
        # Prometheus scrapes the replicas, never through the public edge.
        assert http.get("/metrics").status_code == 404


async def test_stream_is_unbuffered_through_nginx(edge: Edge) -> None:
    with httpx.Client(base_url=edge.nginx.url, timeout=10) as http:
        handle, upstream_id = edge.open_chat(http)
    viewer = Viewer([edge.nginx.url], handle, name="unbuffered").start()
    try:
        await viewer.wait_for(lambda v: v.of("state"), 10)
        # A few hundred bytes, far below nginx's buffers: with proxy_buffering on, they would
        # sit in nginx until the stream ended.
        index = await asyncio.to_thread(edge.control.agent_say, upstream_id, "through nginx")
        await viewer.wait_for(lambda v: index in v.message_indices, 5)
        assert viewer.connects == 1
    finally:
        await viewer.stop()


async def test_sigterm_of_a_replica_under_load_loses_nothing(edge: Edge) -> None:
    chats: list[tuple[str, str]] = []
    with httpx.Client(base_url=edge.nginx.url, timeout=10) as http:
        for _ in range(6):
            chats.append(edge.open_chat(http))
    # Two browsers per chat, all through nginx (round-robin: every replica holds some).
    viewers = [
        Viewer([edge.nginx.url], handle, name=f"c{n}.{k}")
        for n, (handle, _) in enumerate(chats)
        for k in range(2)
    ]
    for viewer in viewers:
        viewer.start()
    stopping = asyncio.Event()

    async def agents() -> None:
        turn = 0
        while not stopping.is_set():
            _, upstream_id = chats[turn % len(chats)]
            turn += 1
            await asyncio.to_thread(edge.control.agent_say, upstream_id, f"line {turn}")
            await asyncio.sleep(0.05)

    async def customers() -> None:
        async with httpx.AsyncClient(base_url=edge.nginx.url, timeout=10) as http:
            turn = 0
            while not stopping.is_set():
                handle, _ = chats[turn % len(chats)]
                turn += 1
                answer = await http.post(
                    f"/api/v2/chats/{handle}",
                    json={"operationName": "SendMessage", "text": f"customer {turn}"},
                )
                assert answer.status_code == 200, answer.text
                await asyncio.sleep(0.1)

    try:
        for viewer in viewers:
            await viewer.wait_for(lambda v: v.of("state"), 15)
        load = [asyncio.create_task(agents()), asyncio.create_task(customers())]
        await asyncio.sleep(2)
        victim = edge.replicas[0]
        streams = httpx.get(victim.url + "/metrics", timeout=5).text
        assert "bff_sse_streams 0.0" not in streams, "the replica to stop holds no stream"
        victim.signal(signal.SIGTERM)
        await asyncio.to_thread(victim.proc.wait, 20)  # type: ignore[union-attr]
        await asyncio.sleep(2)
        stopping.set()
        await asyncio.gather(*load)
        for n, (_, upstream_id) in enumerate(chats):
            expected = edge.transcript(upstream_id)
            assert len(expected) > 5
            for viewer in viewers[2 * n : 2 * n + 2]:
                await viewer.wait_for(lambda v, e=expected: len(v.message_indices) >= len(e), 20)
                assert viewer.message_indices == expected, viewer.name
        # The replica's streams were closed by its drain: their clients reconnected.
        assert sum(v.connects for v in viewers) > len(viewers)
    finally:
        for viewer in viewers:
            await viewer.stop()
    log = edge.nginx.access_log()
    assert '"GET /api/v2/chats/{handle}/events" 200' in log
    assert '"POST /api/v2/chats/{handle}" 200' in log
    for handle, _ in chats:
        assert handle not in log
    assert "request_id=" in log


def test_access_log_hides_handles_on_every_path_form(edge: Edge) -> None:
    """The trailing-slash and /me/chat forms the service also answers, and paths it does not."""
    with httpx.Client(base_url=edge.nginx.url, timeout=10) as http:
        handle, _ = edge.open_chat(http)
        for path in (
            f"/api/v2/chats/{handle}/",
            f"/api/v2/chats/{handle}/messages/?index=1",
            f"/api/v2/me/chat/{handle}",
            f"/api/v2/me/chat/{handle}/messages",
            f"/api/v2/chats/{handle}/unknown",
        ):
            assert http.get(path).status_code in (200, 404), path
    deadline = time.monotonic() + 5
    while "/api/v2/me/chat/{handle}/messages" not in edge.nginx.access_log():
        assert time.monotonic() < deadline, edge.nginx.access_log()[-2000:]
        time.sleep(0.05)
    log = edge.nginx.access_log()
    assert handle not in log
    assert '"GET /api/v2/chats/{handle}" 200' in log
    assert '"GET /api/..." 404' in log
