"""The bus over TLS on every topology, with the URL options a hardened deployment needs: the
CA, a client certificate (the servers require one), passwords, and for Sentinel the
sentinels' own password. Real `redis-server` processes with TLS only (no plaintext port)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from app.bus import RedisBus
from app.errors import BusUnavailableError
from app.models import TranscriptEntry
from harness.redis import DATA_PASSWORD, RedisProcess
from harness.topologies import ClusterGroup, SentinelGroup, Topology
from tests.bus.support import take
from tests.components import missing_component


class TlsServer(Topology):
    kind = "tls"

    def start(self) -> TlsServer:
        self.server = self._spawn("--requirepass", DATA_PASSWORD)
        assert self.tls is not None
        self.url = (
            f"rediss://:{DATA_PASSWORD}@127.0.0.1:{self.server.port}/0?{self.tls.url_options()}"
        )
        return self

    def primaries(self) -> list[RedisProcess]:
        return [self.server]


@pytest.fixture(params=["plain", "sentinel", "cluster"], scope="module")
def tls_topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    topology: Topology
    if request.param == "plain":
        topology = TlsServer(tls=True)
    elif request.param == "sentinel":
        topology = SentinelGroup(tls=True, sentinels=1, replica=False)
    else:
        topology = ClusterGroup(tls=True, replicas=0)
    try:
        topology.start()  # type: ignore[attr-defined]
    except FileNotFoundError as exc:
        topology.stop()
        missing_component(str(exc))
    except BaseException:
        topology.stop()
        raise
    yield topology
    topology.stop()


async def test_bus_over_tls(tls_topology: Topology) -> None:
    bus = RedisBus(tls_topology.url, prefix=f"tls-{secrets.token_hex(4)}", op_timeout_s=3)
    try:
        chat = secrets.token_hex(16)
        fence = await bus.acquire(chat, 10)
        assert fence is not None
        async with bus.subscribe(chat) as sub:
            events = await bus.commit(fence, [TranscriptEntry(1, {"index": 1, "text": "over TLS"})])
            assert await take(sub, 1) == events
        assert await bus.renew([fence], 10) == {fence}
        assert await bus.occupy("streams", "ip", 1)
        assert await bus.ping()
    finally:
        await bus.aclose()


async def test_tls_without_the_ca_is_refused(tls_topology: Topology) -> None:
    """The server's certificate is checked: without the CA it is not trusted."""
    assert tls_topology.tls is not None
    url = tls_topology.url.replace(f"ssl_ca_certs={tls_topology.tls.ca}&", "")
    bus = RedisBus(url, prefix="tls-refused", op_timeout_s=1)
    try:
        with pytest.raises(BusUnavailableError):
            await asyncio.wait_for(bus.record(secrets.token_hex(16)), 10)
    finally:
        await bus.aclose()
