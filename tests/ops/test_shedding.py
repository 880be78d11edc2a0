"""BFF_MAX_STREAMS: a full process answers new streams 503 with Retry-After (so a load
balancer tries another and a client waits), and its readiness says so until a stream ends."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.servers import ServerProcess, start_bff


@pytest.fixture(scope="module")
def small_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_MAX_STREAMS="2", BFF_CHAT_CREATE_BURST="100")
    yield server
    server.stop()


def test_streams_beyond_the_cap_are_refused_and_readiness_follows(
    small_bff: ServerProcess,
) -> None:
    with httpx.Client(base_url=small_bff.url, timeout=10) as http:
        handles = [start_chat(http) for _ in range(3)]
        assert http.get("/readyz").json()["maxStreams"] == 2
        readers = []  # a dropped line iterator would close its stream
        with contextlib.ExitStack() as open_streams:
            for handle in handles[:2]:
                stream = open_streams.enter_context(
                    http.stream("GET", f"/api/v2/chats/{handle}/events")
                )
                assert stream.status_code == 200
                readers.append(stream.iter_lines())
                assert next(readers[-1]) == "event: state"
            refused = http.get(f"/api/v2/chats/{handles[2]}/events")
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json() == {
                "statusCode": 12,
                "statusMessage": "This server is busy, retry later",
            }
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "full"
            # REST is not shed: reads and sends go on.
            assert http.get(f"/api/v2/chats/{handles[2]}").status_code == 200
        # Both streams closed: the process takes streams again.
        for _ in range(100):
            if http.get("/readyz").status_code == 200:
                break
        with http.stream("GET", f"/api/v2/chats/{handles[2]}/events") as stream:
            assert stream.status_code == 200
        metrics = http.get("/metrics").text
    assert re.search(r"^bff_sse_streams_refused_total 1\.0$", metrics, re.M)
    assert re.search(r"^bff_sse_streams_max 2\.0$", metrics, re.M)
