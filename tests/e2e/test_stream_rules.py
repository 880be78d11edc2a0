"""Stream limits, heartbeats and the poller's demand-driven lifecycle, on dedicated servers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, bff_env, free_port, start_bff
from harness.sse import Viewer


@pytest.fixture(scope="module")
def tight_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_MAX_STREAMS_PER_CHAT="2",
        BFF_MAX_STREAMS_PER_IP="3",
        BFF_SSE_HEARTBEAT_S="1",
        BFF_BACKGROUND_KEEPALIVE_S="2",
        BFF_POLL_FLOOR_S="0.2",
        BFF_POLL_CEILING_S="0.3",
    )
    yield server
    server.stop()


async def test_streams_are_limited_per_chat_and_per_ip(tight_bff: ServerProcess) -> None:
    with httpx.Client(base_url=tight_bff.url) as client:
        first, second = start_chat(client), start_chat(client)
    viewers = [Viewer([tight_bff.url], first).start() for _ in range(2)]
    try:
        await asyncio.gather(*(v.wait_for(lambda v: v.connects == 1) for v in viewers))
        async with httpx.AsyncClient(base_url=tight_bff.url, timeout=10) as http:
            refused = await http.get(f"/api/v2/chats/{first}/events")
            assert refused.status_code == 429
            assert refused.json()["statusCode"] == 3
            assert refused.headers["Retry-After"]
            third = Viewer([tight_bff.url], second).start()
            viewers.append(third)
            await third.wait_for(lambda v: v.connects == 1)
            over_ip = await http.get(f"/api/v2/chats/{second}/events")
            assert over_ip.status_code == 429
    finally:
        for viewer in viewers:
            await viewer.stop()
    # Closed streams free their slots.
    again = Viewer([tight_bff.url], first).start()
    try:
        await again.wait_for(lambda v: v.connects == 1)
    finally:
        await again.stop()


async def test_heartbeats_keep_an_idle_stream_alive(tight_bff: ServerProcess) -> None:
    with httpx.Client(base_url=tight_bff.url) as client:
        handle = start_chat(client)
    viewer = Viewer([tight_bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.comments >= 3, timeout_s=10)
    finally:
        await viewer.stop()
    assert viewer.connects == 1


async def test_polling_stops_when_nobody_cares_and_resumes_on_interest(
    tight_bff: ServerProcess, control: EmulatorControl
) -> None:
    with httpx.Client(base_url=tight_bff.url, timeout=10) as client:
        handle = start_chat(client)
        upstream_id = next(
            str(r["chat_id"]) for r in reversed(control.requests()) if r.get("chat_id")
        )

        def polls() -> int:
            return len([r for r in control.requests() if r.get("chat_id") == upstream_id])

        viewer = Viewer([tight_bff.url], handle).start()
        await viewer.wait_for(lambda v: len(v.message_indices) >= 2)
        watched = polls()
        await asyncio.sleep(1.0)
        assert polls() > watched, "a watched chat must be polled"
        await viewer.stop()
        await asyncio.sleep(2 + 2.5)  # grace period, plus a sweep or two
        idle_from = polls()
        await asyncio.sleep(2.0)
        assert polls() == idle_from, "polling went on after the grace period"
        started = time.monotonic()
        index = control.agent_say(upstream_id, "are you still there?")
        answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": index, "wait": 10})
        assert any(m.get("text") == "are you still there?" for m in answer.json()["messages"])
        assert time.monotonic() - started < 5


def open_streams(server: ServerProcess) -> int:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    line = next(ln for ln in text.splitlines() if ln.startswith("bff_sse_streams "))
    return int(float(line.split()[1]))


async def test_a_client_that_stops_reading_is_disconnected(
    emulator: ServerProcess, control: EmulatorControl
) -> None:
    server = start_bff(emulator.url, BFF_SSE_SEND_TIMEOUT_S="1", BFF_SEND_BURST="1000")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            handle = start_chat(client)
        upstream_id = next(
            str(r["chat_id"]) for r in reversed(control.requests()) if r.get("chat_id")
        )
        healthy = Viewer([server.url], handle).start()
        await healthy.wait_for(lambda v: v.connects == 1)
        # A client that never reads: a tiny receive window, then silence.
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(f"GET /api/v2/chats/{handle}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await asyncio.sleep(0.5)
        assert open_streams(server) == 2
        big = "x" * 60_000
        for n in range(60):
            await asyncio.to_thread(control.agent_say, upstream_id, f"{n} {big}")
        deadline = time.monotonic() + 20
        while open_streams(server) > 1:
            assert time.monotonic() < deadline, "the stalled stream was never dropped"
            await asyncio.sleep(0.2)
        await healthy.wait_for(
            lambda v: sum(1 for e in v.of("message") if big in str(e.data.get("text"))) == 60,
            timeout_s=20,
        )
        assert healthy.connects == 1, "the healthy viewer must not have been disturbed"
        await healthy.stop()
    finally:
        stalled.close()
        server.stop()


async def test_sigterm_answers_waiting_long_polls_at_once(emulator: ServerProcess) -> None:
    server = start_bff(emulator.url)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            handle = start_chat(client)
            client.get(f"/api/v2/chats/{handle}")  # warm
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            waiting = asyncio.create_task(
                http.get(f"/api/v2/chats/{handle}/messages", params={"index": 10_000, "wait": 25})
            )
            await asyncio.sleep(0.5)
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            answer = await waiting
            assert answer.status_code == 200
            assert answer.json()["messages"] == []
            assert time.monotonic() - started < 3
        assert server.proc is not None
        await asyncio.to_thread(server.proc.wait, 10)
        assert time.monotonic() - started < 8
    finally:
        server.stop()


async def test_plain_uvicorn_drains_streams_on_sigterm(emulator: ServerProcess) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    env.update(bff_env(emulator.url, BFF_SHUTDOWN_GRACE_S="2"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.1)
        with httpx.Client(base_url=url, timeout=10) as client:
            handle = start_chat(client)
        viewer = Viewer([url], handle).start()
        await viewer.wait_for(lambda v: v.connects == 1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)
        await viewer.stop()
        assert time.monotonic() - started < 6, "open streams held the shutdown"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_heartbeats_are_spread_over_the_period(emulator: ServerProcess) -> None:
    """Every stream gets one heartbeat per period, but not all in the same instant: a burst
    of thousands of writes would stall every poll and message of the process."""
    server = start_bff(emulator.url, BFF_SSE_HEARTBEAT_S="2", BFF_CHAT_CREATE_BURST="20")
    try:
        with httpx.Client(base_url=server.url) as client:
            handles = [start_chat(client, f"Beat{k}") for k in range(10)]
        beats: dict[int, list[float]] = {k: [] for k in range(len(handles))}

        async def listen(k: int, handle: str, http: httpx.AsyncClient) -> None:
            async with http.stream("GET", f"/api/v2/chats/{handle}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        beats[k].append(time.monotonic())

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            tasks = [asyncio.create_task(listen(k, h, http)) for k, h in enumerate(handles)]
            await asyncio.sleep(4.6)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()
    assert all(len(times) >= 2 for times in beats.values()), beats
    # Consecutive heartbeats of one stream are one period apart...
    for times in beats.values():
        assert all(1.6 < b - a < 2.4 for a, b in itertools.pairwise(times)), times
    # ...and the streams' phases cover most of the period instead of one instant.
    phases = sorted(times[0] % 2.0 for times in beats.values())
    widest_gap = max(
        [b - a for a, b in itertools.pairwise(phases)] + [phases[0] + 2.0 - phases[-1]]
    )
    assert widest_gap < 1.0, phases
