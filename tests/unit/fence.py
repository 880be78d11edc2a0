"""The fence of the fast lane: while it is closed, starting a process (subprocess, asyncio,
multiprocessing, fork, spawn) or using a network socket (connect, bind) raises `FenceError`,
and every attempt is remembered so that one the code under test swallowed still fails the
test. `tests/unit/conftest.py` closes it around each unit test's setup and call."""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest


class FenceError(RuntimeError):
    """Not an OSError on purpose: code that degrades gracefully on a refused connection must
    not mistake the fence for one."""


class Fence:
    """The guards in place while a unit test runs, and what was attempted through them."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._mp = pytest.MonkeyPatch()

    def _refuse(self, what: str) -> Callable[..., Any]:
        def refused(*args: object, **kwargs: object) -> Any:
            self.attempts.append(what)
            raise FenceError(f"a unit test must not {what}; it belongs outside tests/unit")

        return refused

    def _refuse_socket(self) -> Callable[..., Any]:
        refuse = self._refuse("use a network socket")

        def refused(sock: socket.socket, *args: object) -> Any:
            # Callers close a socket whose connect raised OSError only (socket.create_connection
            # among them): closed here, the refusal leaves no ResourceWarning to hide behind.
            sock.close()
            return refuse()

        return refused

    def close(self) -> None:
        process = "start a process"
        # The lowest layer every process start goes through: subprocess (and so asyncio's
        # subprocesses and os.popen) and multiprocessing's spawn use fork_exec or posix_spawn;
        # os.system, os.spawn* and multiprocessing's fork use fork.
        self._mp.setattr(_posixsubprocess, "fork_exec", self._refuse(process))
        if hasattr(subprocess, "_fork_exec"):
            self._mp.setattr(subprocess, "_fork_exec", self._refuse(process))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                self._mp.setattr(os, name, self._refuse(process))
        for name in ("connect", "connect_ex", "bind"):
            self._mp.setattr(socket.socket, name, self._refuse_socket())

    def open(self) -> None:
        self._mp.undo()

    def check(self) -> None:
        if self.attempts:
            tried, self.attempts = self.attempts, []
            raise FenceError(f"a unit test tried to {', '.join(sorted(set(tried)))}")
