"""The abuse limits routes apply: the token bucket's arithmetic (a table) and the two limiter
interfaces over a bus (the in-process one here; the Redis buses pass the same contract in
`tests/bus/test_contract.py`, and the fleet suite shows one limit across instances)."""

from __future__ import annotations

import pytest

from app.bus import MemoryBus
from app.bus._limits_memory import take_token
from app.edge.limits import ConcurrencyLimiter, RateLimiter
from app.errors import RateLimitedError


@pytest.mark.parametrize(
    ("tokens", "elapsed", "rate", "burst", "left", "wait"),
    [
        (3.0, 0.0, 1.0, 3, 2.0, 0.0),  # a full bucket gives one
        (0.0, 0.0, 1.0, 3, 0.0, 1.0),  # an empty one says: one second
        (0.5, 0.0, 2.0, 3, 0.5, 0.25),  # half a token at two a second: a quarter second
        (0.0, 10.0, 1.0, 3, 2.0, 0.0),  # refills up to the burst, never beyond
        (0.2, 0.3, 1.0, 3, 0.5, 0.5),  # not enough yet: nothing taken
        (1.0, -5.0, 1.0, 3, 0.0, 0.0),  # a clock going backwards adds nothing
    ],
)
def test_take_token(
    tokens: float, elapsed: float, rate: float, burst: int, left: float, wait: float
) -> None:
    got_left, got_wait = take_token(tokens, elapsed, rate, burst)
    assert got_left == pytest.approx(left)
    assert got_wait == pytest.approx(wait)


async def test_rate_limiter_refuses_above_burst_with_retry_after() -> None:
    limiter = RateLimiter(MemoryBus(), "create", per_minute=60, burst=3)
    for _ in range(3):
        await limiter.hit("1.2.3.4")
    with pytest.raises(RateLimitedError) as caught:
        await limiter.hit("1.2.3.4")
    assert caught.value.retry_after_s == 1
    await limiter.hit("5.6.7.8")  # other clients are unaffected


async def test_rate_limiters_of_different_names_are_independent() -> None:
    bus = MemoryBus()
    create = RateLimiter(bus, "create", per_minute=1, burst=1)
    send = RateLimiter(bus, "send", per_minute=1, burst=1)
    await create.hit("ip")
    await send.hit("ip")
    with pytest.raises(RateLimitedError) as caught:
        await create.hit("ip")
    assert caught.value.retry_after_s == 60


async def test_concurrency_limiter_holds_and_releases() -> None:
    limiter = ConcurrencyLimiter(MemoryBus(), "streams", 2, message="Too many open streams")
    await limiter.acquire("ip")
    async with limiter.hold("ip"):
        with pytest.raises(RateLimitedError, match="Too many open streams") as caught:
            await limiter.acquire("ip")
        assert caught.value.retry_after_s == 5
    await limiter.acquire("ip")  # `hold` released its place
    limiter.release("ip")
    limiter.release("ip")
    limiter.release("ip")  # more releases than holders change nothing
    async with limiter.hold("ip"), limiter.hold("ip"):
        pass
