"""Real servers for tests: `chat-bff` processes on loopback ports, started and stopped here.

Each server is a separate OS process so tests can SIGKILL or SIGTERM it like production would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

CONTACT_CENTER_ID = "cc-test-7f3a9e1b"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One `python -m app.cli <command>` on 127.0.0.1:<port>, logs in a temp file.

    `port` reuses a known port (e.g. a killed server's, to restart "the same" instance); by
    default a free one is picked. `argv` replaces the command line (`{port}` in it is the
    port): another way of serving the app, such as a plain uvicorn.
    """

    def __init__(
        self,
        command: str,
        *,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.argv = None if argv is None else list(argv)
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
        self.env.update(env or {})
        self.log_path = Path(tempfile.mkstemp(prefix=f"chat-bff-{command}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_path = "/_emulator/stats" if command == "emulator" else "/healthz"

    def start(self, *, wait_s: float = 20.0) -> ServerProcess:
        log = self.log_path.open("ab")
        argv = [sys.executable, "-m", "app.cli", self.command, "--port", str(self.port), *self.args]
        if self.argv is not None:
            argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc.wait()
                raise RuntimeError(f"{self.command} exited early:\n{self.logs()}")
            try:
                if httpx.get(self.url + self.health_path, timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.command} did not start:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def bff_env(upstream_url: str, **extra: str) -> dict[str, str]:
    env = {
        "BFF_UPSTREAM_URL": upstream_url,
        "BFF_CONTACT_CENTER_ID": CONTACT_CENTER_ID,
        "BFF_SECRET_KEY": SECRET_KEY,
        # The browser tests open the demo shop page at `/`; a production serve has none
        # (tests/ops/test_static.py asks for that explicitly).
        "BFF_DEMO_PAGE": "true",
    }
    env.update(extra)
    return env


def start_emulator(*extra: str) -> ServerProcess:
    args = ("--contact-center-id", CONTACT_CENTER_ID, *extra)
    return ServerProcess("emulator", args=args).start()


def start_bff(upstream_url: str, **extra: str) -> ServerProcess:
    return ServerProcess("serve", env=bff_env(upstream_url, **extra)).start()


def create_upstream_chat(emulator: ServerProcess, nickname: str = "Cold") -> str:
    """A chat created directly upstream, which chat-bff has never seen (a cold cache)."""
    answer = httpx.post(
        emulator.url + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": nickname, "subject": "cold"},
        headers={"ContactCenterId": CONTACT_CENTER_ID},
        timeout=5,
    )
    answer.raise_for_status()
    upstream_id: str = answer.json()["id"]
    return upstream_id


class RedisServer:
    """A private `redis-server` on a loopback port, so tests may restart and flush it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        parts = [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(f"*{len(args)}\r\n{''.join(parts)}".encode())
            return sock.recv(65536)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
