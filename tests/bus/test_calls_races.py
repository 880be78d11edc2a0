"""Errors redis-py raises from its own frames while a Cluster master dies (its topology
refresh racing commands in flight, uvloop's "handler is closed" under a closed transport) are
retried like a failover; the same errors raised by our own code are bugs and propagate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.bus._calls import Calls
from app.errors import BusUnavailableError
from harness.redis import REDIS_URL
from tests.components import redis_or_skip


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    await redis_or_skip()
    redis = Redis.from_url(REDIS_URL, socket_timeout=2)
    yield redis
    await redis.aclose()


def _flaky_ping(error: type[Exception], times: int) -> object:
    """A response callback (redis-py runs it inside its own frames) failing `times` times."""
    left = [times]

    def callback(response: object, **_: object) -> object:
        if left[0] > 0:
            left[0] -= 1
            raise error("handler is closed")
        return response

    return callback


@pytest.mark.parametrize("error", [RuntimeError, AttributeError, TypeError])
async def test_an_error_raised_inside_redis_py_is_retried(client: Redis, error: type) -> None:
    client.set_response_callback("PING", _flaky_ping(error, 2))
    calls = Calls(client, op_timeout_s=2, failover_wait_s=2)
    assert await calls.run(client.ping) in (True, b"PONG")


async def test_without_waiting_it_is_reported_as_the_bus_unavailable(client: Redis) -> None:
    client.set_response_callback("PING", _flaky_ping(RuntimeError, 1))
    calls = Calls(client, op_timeout_s=2, failover_wait_s=2)
    with pytest.raises(BusUnavailableError):
        await calls.run(client.ping, wait=False)


async def test_the_same_error_from_our_own_code_propagates(client: Redis) -> None:
    calls = Calls(client, op_timeout_s=2, failover_wait_s=2)

    async def ours() -> None:
        await client.ping()
        raise RuntimeError("a bug of ours")

    with pytest.raises(RuntimeError, match="a bug of ours"):
        await calls.run(ours)
