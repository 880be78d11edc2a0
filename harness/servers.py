"""Real servers on loopback: `chat-bff` processes (serve, emulator, or any argv) on free ports,
started and stopped here, with the settings and ids every test and scenario shares.

Each server is a separate OS process so tests and the bench can SIGKILL or SIGTERM it like
production would. It must not know pytest (a missing binary is an exception here; the tests
decide whether that skips or fails) nor what runs against the servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

CONTACT_CENTER_ID = "cc-test-7f3a9e1b"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One `python -m app.cli <command>` on 127.0.0.1:<port>, logs in a temp file, ready once
    `health_path` answers 200 (by default the emulator's stats or chat-bff's /healthz).

    `port` reuses a known port (e.g. a killed server's, to restart "the same" instance); by
    default a free one is picked. `argv` replaces the command line (`{port}` in it is the
    port): another way of serving the app, such as a plain uvicorn, or another server (the
    bench's own). The environment is this process's without any `BFF_*`, plus `env`.
    """

    def __init__(
        self,
        command: str,
        *,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        argv: Sequence[str] | None = None,
        health_path: str | None = None,
        cwd: Path | None = None,
        log_prefix: str = "chat-bff",
    ) -> None:
        self.argv = None if argv is None else list(argv)
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
        self.env.update(env or {})
        self.cwd = cwd
        self.log_path = Path(tempfile.mkstemp(prefix=f"{log_prefix}-{command}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        if health_path is None:
            health_path = "/_emulator/stats" if command == "emulator" else "/healthz"
        self.health_path = health_path

    def start(self, *, wait_s: float = 20.0) -> Self:
        log = self.log_path.open("ab")
        argv = [sys.executable, "-m", "app.cli", self.command, "--port", str(self.port), *self.args]
        if self.argv is not None:
            argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            cwd=self.cwd,
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

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

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
