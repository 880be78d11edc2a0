"""The fence of the fast lane: a test under tests/unit runs in this process or not at all.

While a unit test is set up and run, starting a process (subprocess, asyncio, multiprocessing,
fork, spawn) or using a network socket (connect, bind) raises `FenceError`, and an attempt the
code under test swallowed still fails the test. In-process ASGI calls (`httpx.ASGITransport`)
need no socket, and the event loop's own socketpair is neither connected nor bound, so both pass.

The fence covers the setup phase too, so a server fixture of wider scope (the session's
`emulator` or `bff`) asked for by a unit test is refused rather than started. It does not cover
teardown: in a whole-suite run the last unit test's teardown is also where the session stops the
servers other suites started, and stopping them must work.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.unit.fence import Fence

FENCE = Fence()


@pytest.fixture(scope="session")
def fence() -> Fence:
    """The fence itself, for the test that proves it holds."""
    return FENCE


def _fenced() -> Generator[None, object, object]:
    FENCE.close()
    try:
        result = yield
    finally:
        FENCE.open()
    FENCE.check()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fenced())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fenced())
