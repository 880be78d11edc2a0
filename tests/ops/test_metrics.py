"""/metrics as Prometheus scrapes it: the process, platform and GC collectors, build info, a
request-duration histogram by route template, and the live figures of streams, long-polls,
pollers, lease changes and bus errors, moving as a user's requests move them."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version

import httpx
import pytest

from harness.chats import start_chat
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff
from tests.components import missing_component


def scrape(server: ServerProcess) -> str:
    answer = httpx.get(server.url + "/metrics", timeout=5)
    assert answer.status_code == 200
    return answer.text


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def eventually(server: ServerProcess, series: str, wanted: float, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while value(scrape(server), series) != wanted:
        assert time.monotonic() < deadline, f"{series} never became {wanted}"
        time.sleep(0.05)


def test_collectors_and_build_info(bff: ServerProcess) -> None:
    text = scrape(bff)
    for family in (
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "python_info",
        'python_gc_collections_total{generation="2"}',
    ):
        assert re.search(rf"^{re.escape(family)}[ {{]", text, re.M), family
    assert f'version="{version("chat-bff")}"' in re.search(r"^bff_build_info\{.*$", text, re.M)[0]


def test_request_durations_by_route_template(bff: ServerProcess, client: httpx.Client) -> None:
    handle = start_chat(client)
    client.get(f"/api/v2/chats/{handle}")
    text = scrape(bff)
    series = 'bff_http_request_duration_seconds_count{method="GET",route="/api/v2/chats/{handle}"}'
    assert value(text, series) >= 1
    assert (
        value(text, 'bff_http_request_duration_seconds_count{method="POST",route="/api/v2/chats"}')
        >= 1
    )
    assert handle not in text


def test_streams_long_polls_and_pollers_follow_requests(
    bff: ServerProcess, client: httpx.Client
) -> None:
    handle = start_chat(client)
    before = value(scrape(bff), "bff_sse_streams")
    acquired = value(scrape(bff), 'bff_lease_changes_total{change="acquired"}')
    assert acquired >= 1  # the new chat's poller took its lease
    assert value(scrape(bff), "bff_pollers") >= 1
    with client.stream("GET", f"/api/v2/chats/{handle}/events") as stream:
        lines = stream.iter_lines()  # kept: a dropped iterator closes the stream
        assert next(lines) == "event: state"
        eventually(bff, "bff_sse_streams", before + 1)
        waiting = threading.Thread(
            target=lambda: httpx.get(
                f"{bff.url}/api/v2/chats/{handle}/messages?index=999&wait=2", timeout=10
            )
        )
        waiting.start()
        eventually(bff, "bff_long_polls", 1)
        waiting.join()
        eventually(bff, "bff_long_polls", 0)
    eventually(bff, "bff_sse_streams", before)


@pytest.fixture
def redis_bff(emulator: ServerProcess) -> Iterator[tuple[ServerProcess, RedisServer]]:
    try:
        redis = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    server = start_bff(emulator.url, BFF_REDIS_URL=redis.url, BFF_LEASE_TTL_S="1")
    yield server, redis
    server.stop()
    redis.stop()


def test_bus_errors_and_lost_leases_are_counted(
    redis_bff: tuple[ServerProcess, RedisServer],
) -> None:
    server, redis = redis_bff
    with httpx.Client(base_url=server.url, timeout=10) as http:
        start_chat(http)
    assert value(scrape(server), 'bff_lease_changes_total{change="acquired"}') >= 1
    assert value(scrape(server), "bff_bus_errors_total") == 0
    redis.stop()
    deadline = time.monotonic() + 10
    while value(scrape(server), "bff_bus_errors_total") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Renewals keep failing past a lease period: the poller gives its lease up.
    while value(scrape(server), 'bff_lease_changes_total{change="released"}') == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ready = httpx.get(server.url + "/readyz", timeout=10)
    assert ready.json()["bus"] == "unavailable"
    assert value(scrape(server), 'bff_dependency_up{dependency="bus"}') == 0
