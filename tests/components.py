"""Tests that need a component this machine may lack (Redis, redis-server, Chromium)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest
from redis.asyncio import Redis

from harness.redis import REDIS_URL


def missing_component(message: str) -> NoReturn:
    """Skip locally, but fail on CI: a skipped test there would hide a broken install."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required on CI)")
    pytest.skip(message)


async def redis_or_skip(url: str = REDIS_URL) -> None:
    """Skip (or, on CI, fail) when the test Redis does not answer."""
    client = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        missing_component(f"Redis at {url} does not answer: {exc}")
    finally:
        await client.aclose()
