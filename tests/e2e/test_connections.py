"""Connections that misbehave below HTTP: clients that stop reading a stream, send their
headers a byte at a time, or send headers without end. Raw sockets on loopback, since no
well-behaved client library can be made to misbehave like this."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from harness.sse import Viewer


def server_side_peers(port: int) -> set[int]:
    """Client ports of the TCP connections the server on `port` holds open (any state but
    TIME_WAIT / CLOSE), read from the kernel's table."""
    peers: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.rsplit(":", 1)[1], 16) != port:
                continue
            if state in ("06", "07", "0A"):  # TIME_WAIT, CLOSE, LISTEN
                continue
            peers.add(int(remote.rsplit(":", 1)[1], 16))
    return peers


def stalled_stream(port: int, handle: str) -> tuple[socket.socket, int]:
    """A stream request from a client that reads the status line and then nothing more.
    Returns the socket and the HTTP status."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/v2/chats/{handle}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status = int(sock.recv(12).split()[1])
    return sock, status


@pytest.fixture(scope="module")
def stalling(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_SSE_SEND_TIMEOUT_S="1",
        BFF_MAX_STREAMS_PER_IP="2",
        BFF_MAX_STREAMS_PER_CHAT="50",
        BFF_SEND_BURST="1000",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def big_chat(stalling: ServerProcess, emulator: ServerProcess) -> str:
    """A chat whose transcript is far larger than any socket buffer, so that sending it to a
    client that does not read stalls."""
    control = EmulatorControl(emulator.url)
    with httpx.Client(base_url=stalling.url, timeout=10) as client:
        handle = start_chat(client)
        # The chat created last (the request log's last chat may be another chat's poll).
        upstream_id = str(control.http.get("/chats").json()["chats"][-1]["id"])
        big = "x" * 60_000
        for n in range(50):
            control.agent_say(upstream_id, f"{n} {big}")
        client.get(f"/api/v2/chats/{handle}/messages", params={"index": 50, "wait": 10})
    control.http.close()
    return handle


async def test_a_stream_that_stops_reading_is_closed_and_counted_until_then(
    stalling: ServerProcess, big_chat: str
) -> None:
    handle = big_chat
    sockets: list[socket.socket] = []
    try:
        accepted: list[int] = []
        most_open = 0
        deadline = time.monotonic() + 60
        while len(accepted) < 5:
            assert time.monotonic() < deadline, f"only {len(accepted)} streams ever accepted"
            sock, status = await asyncio.to_thread(stalled_stream, stalling.port, handle)
            sockets.append(sock)
            if status == 200:
                accepted.append(sock.getsockname()[1])
            else:
                assert status == 429
                sock.close()
            ours = server_side_peers(stalling.port) & set(accepted)
            most_open = max(most_open, len(ours))
            await asyncio.sleep(0.3)
        # Every stalled stream is dropped, and its socket is really closed on the server
        # (within a second or two; the margin is for a loaded machine, the bug was "never").
        deadline = time.monotonic() + 30
        while server_side_peers(stalling.port) & set(accepted):
            assert time.monotonic() < deadline, "stalled sockets were never closed"
            await asyncio.sleep(0.2)
        assert most_open <= 2, f"{most_open} half-dead streams held at once (limit 2)"
    finally:
        for sock in sockets:
            sock.close()
    assert "returned without completing response" not in stalling.logs()


@pytest.fixture(scope="module")
def guarded(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_HEADER_TIMEOUT_S="1.5",
        BFF_MAX_HEADER_BYTES="16384",
        BFF_SSE_HEARTBEAT_S="1",
    )
    yield server
    server.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (any answer before that is read)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def test_slow_headers_are_cut_off(guarded: ServerProcess) -> None:
    slow: list[socket.socket] = []
    try:
        for n in range(20):
            sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        started = time.monotonic()
        # Dribble one header line every 0.3 s on every other connection; the rest say nothing.
        while time.monotonic() - started < 4:
            for sock in slow[1::2]:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
            # The server still answers everyone else at once.
            answer = await asyncio.to_thread(httpx.get, guarded.url + "/healthz", timeout=5)
            assert answer.status_code == 200
            await asyncio.sleep(0.3)
        open_ones = [n for n, sock in enumerate(slow) if not _closed_by_server(sock)]
        assert open_ones == [], f"connections {open_ones} still open after 4 s (deadline 1.5 s)"
    finally:
        for sock in slow:
            sock.close()


def _status_of(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        return int(head.split()[1]) if head else 0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 3000 + b"\r\n",
        b"GET /healthz?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one huge header", "unterminated huge header", "many headers", "huge request line"],
)
def test_oversized_headers_get_431(guarded: ServerProcess, request_bytes: bytes) -> None:
    assert _status_of(guarded.port, request_bytes) == 431
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8_000 + b"\r\n\r\n"
    assert _status_of(guarded.port, ok) == 200


async def test_a_body_that_never_arrives_is_cut_off(guarded: ServerProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    try:
        sock.sendall(
            b"POST /api/v2/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        await asyncio.sleep(3.5)
        assert _closed_by_server(sock), "a request body that never came held its connection"
    finally:
        sock.close()


async def test_deadlines_leave_answers_in_progress_alone(guarded: ServerProcess) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        handle = start_chat(client)
        viewer = Viewer([guarded.url], handle).start()
        try:
            started = time.monotonic()
            answer = await asyncio.to_thread(
                client.get,
                f"/api/v2/chats/{handle}/messages",
                params={"index": 10_000, "wait": 3},
            )
            assert answer.status_code == 200
            assert time.monotonic() - started >= 2.9
            await viewer.wait_for(lambda v: v.comments >= 3)
            assert viewer.connects == 1, "a stream was cut by the request deadline"
        finally:
            await viewer.stop()


async def test_an_answer_nobody_reads_does_not_keep_its_connection(
    stalling: ServerProcess, big_chat: str
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stalling.port))
    try:
        port = sock.getsockname()[1]
        sock.sendall(
            f"GET /api/v2/chats/{big_chat}/messages?index=1 HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await asyncio.sleep(0.5)
        assert port in server_side_peers(stalling.port)
        # The answer (3 MB) is written and the server closes; the client never reads. After
        # the close grace (1 s here) the server must have let go of the socket and its buffer.
        deadline = time.monotonic() + 8
        while port in server_side_peers(stalling.port):
            assert time.monotonic() < deadline, "the server kept an unread answer's socket"
            await asyncio.sleep(0.2)
    finally:
        sock.close()
