"""The fence holds: no unit test starts a process or uses a network socket, even if it swallows
the refusal, and in-process ASGI calls still work."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.unit.fence import Fence, FenceError


def _connect_loopback() -> None:
    with socket.socket() as sock:
        sock.connect(("127.0.0.1", 6379))


def _bind_loopback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


def _connect_ipv6() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.connect_ex(("::1", 6379))


def _run() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def _posix_spawn() -> None:
    os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], {})


def _system() -> None:
    os.system("true")  # noqa: S605 - the call the fence must refuse


def _fork() -> None:
    os.fork()


def _multiprocessing() -> None:
    process = multiprocessing.get_context("spawn").Process(target=print)
    process.start()
    process.join()


def _asyncio_subprocess() -> None:
    async def start() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    asyncio.run(start())


def _http_to_loopback() -> None:
    httpx.get("http://127.0.0.1:1/", timeout=1)


ATTEMPTS: dict[str, Callable[[], None]] = {
    "connect": _connect_loopback,
    "bind": _bind_loopback,
    "connect_ex": _connect_ipv6,
    "subprocess": _run,
    "posix_spawn": _posix_spawn,
    "system": _system,
    "fork": _fork,
    "multiprocessing": _multiprocessing,
    "asyncio": _asyncio_subprocess,
    "httpx": _http_to_loopback,
}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_processes_and_sockets_are_refused(attempt: str, fence: Fence) -> None:
    with pytest.raises(FenceError):
        ATTEMPTS[attempt]()
    assert fence.attempts
    fence.attempts.clear()


def test_a_swallowed_refusal_still_fails_the_test(fence: Fence) -> None:
    # What code under test that degrades gracefully might do.
    with contextlib.suppress(Exception):
        _connect_loopback()
    with pytest.raises(FenceError, match="network socket"):
        fence.check()


SETUP: list[str] = []


@pytest.fixture(scope="module")
def server_of_wider_scope(fence: Fence) -> None:
    # A fixture shared by several tests is set up once, in the first one's setup: fenced too.
    try:
        _run()
    except FenceError:
        SETUP.append("refused")
    # Left in the record, the attempt would fail this setup: cleared to let the test look.
    fence.attempts.clear()


@pytest.mark.usefixtures("server_of_wider_scope")
def test_fixtures_of_wider_scope_are_fenced(fence: Fence) -> None:
    assert SETUP == ["refused"]


async def test_in_process_asgi_calls_pass() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        answer = await client.get("/ping")
    assert answer.json() == {"pong": "yes"}
