"""The `FleetStats` contract (app/bus/fleet.py), run against every bus: observations land in
their bucket, are shared by the fleet's instances, and decay by half every half-life."""

from __future__ import annotations

import asyncio

import pytest

from app.bus.fleet import BUCKETS, KINDS, bucket_of
from tests.bus.support import BusFactory


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(0.0, 0), (0.5, 0), (0.51, 1), (2.0, 3), (12.0, 6), (299.0, 11), (300.0, 11), (9e9, 12)],
)
def test_buckets_include_their_upper_edge_and_one_holds_the_rest(
    seconds: float, bucket: int
) -> None:
    assert bucket_of(seconds) == bucket


async def test_a_fresh_fleet_has_every_kind_empty(make: BusFactory) -> None:
    snapshot = await (await make()).snapshot()
    assert set(snapshot) == set(KINDS)
    assert all(weights == (0.0,) * BUCKETS for weights in snapshot.values())


async def test_observations_land_in_their_bucket_and_are_shared(make: BusFactory) -> None:
    a, b = await make(), await make()
    await a.observe("reply", 1.2)
    await b.observe("reply", 1.3)
    await b.observe("join", 45.0)
    for bus in (a, b):
        snapshot = await bus.snapshot()
        reply, join = snapshot["reply"], snapshot["join"]
        assert reply[bucket_of(1.2)] == pytest.approx(2.0, rel=0.01)
        assert sum(reply) == pytest.approx(2.0, rel=0.01)
        assert join[bucket_of(45.0)] == pytest.approx(1.0, rel=0.01)
        assert sum(join) == pytest.approx(1.0, rel=0.01)


async def test_concurrent_observations_are_all_counted(make: BusFactory) -> None:
    a, b = await make(), await make()
    await asyncio.gather(*(x.observe("reply", 20.0) for x in [a, b] * 10))
    assert sum((await a.snapshot())["reply"]) == pytest.approx(20.0, rel=0.01)


async def test_weights_halve_every_half_life(make: BusFactory) -> None:
    bus = await make(history_half_life_s=0.4)
    await bus.observe("reply", 3.0)
    await asyncio.sleep(0.4)
    older = sum((await bus.snapshot())["reply"])
    # Half of it after one half-life (a little less: the snapshot comes a moment later).
    assert 0.2 < older <= 0.51
    await bus.observe("reply", 3.0)
    weights = (await bus.snapshot())["reply"]
    assert sum(weights) == pytest.approx(1.0 + older, abs=0.2)
    assert weights[bucket_of(3.0)] == sum(weights)
