"""The `IdempotencyStore` contract (app/bus/base.py), on the memory bus, one Redis, a Sentinel
group and a Cluster: one holder per client and key, answers kept and expired, and the caps
per client and in total that no caller can grow the store past."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.bus import Bus, ChatRecord, RedisBus
from app.bus.guards import IDEMPOTENCY_BUCKET_S, IDEMPOTENCY_COUNT_TTL_S, IdempotencyClaim
from app.errors import BusUnavailableError
from harness.redis import REDIS_URL
from tests.bus.proxy import Proxy
from tests.bus.support import BusFactory, delete_prefix

TTL = 0.3
ROOMY = 1_000_000


def digest() -> str:
    return secrets.token_hex(16)


async def begin(
    bus: Bus,
    key: str,
    fingerprint: str,
    in_flight_s: float = 5,
    *,
    client: str = "c0ffee",
    max_per_client: int = ROOMY,
    max_total: int = ROOMY,
    floor_per_client: int = 0,
) -> IdempotencyClaim:
    return await bus.idempotency_begin(
        client,
        key,
        fingerprint,
        in_flight_s=in_flight_s,
        max_per_client=max_per_client,
        max_total=max_total,
        floor_per_client=floor_per_client,
    )


async def test_idempotency_one_holder_then_the_stored_answer(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = digest()
    claim = await begin(a, key, "fp-1")
    assert claim.state == "new"
    assert claim.token
    assert (await begin(b, key, "fp-1")).state == "in_flight"
    assert (await begin(b, key, "fp-2")).state == "mismatch"
    assert await a.idempotency_finish("c0ffee", key, claim.token, '{"s":200}', 5)
    done = await begin(b, key, "fp-1")
    assert (done.state, done.answer) == ("done", '{"s":200}')
    assert (await begin(b, key, "fp-2")).state == "mismatch"
    # Finished: neither a second finish nor an abandon changes the stored answer.
    assert not await a.idempotency_finish("c0ffee", key, claim.token, "other", 5)
    await a.idempotency_abandon("c0ffee", key, claim.token)
    assert (await begin(a, key, "fp-1")).answer == '{"s":200}'


async def test_one_key_of_two_clients_names_two_entries(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = digest()
    first = await begin(a, key, "fp", client="alice")
    assert await a.idempotency_finish("alice", key, first.token, "alice's answer", 5)
    other = await begin(b, key, "fp", client="bob")
    assert other.state == "new"  # never alice's answer
    assert (await begin(b, key, "fp", client="alice")).answer == "alice's answer"


async def test_idempotency_concurrent_begins_have_one_winner(make: BusFactory) -> None:
    buses = [await make() for _ in range(3)]
    key = digest()
    claims = await asyncio.gather(*(begin(bus, key, "fp") for bus in buses for _ in range(10)))
    assert sorted(c.state for c in claims).count("new") == 1
    assert {c.state for c in claims} == {"new", "in_flight"}


async def test_idempotency_abandon_frees_the_key_only_for_its_holder(bus: Bus) -> None:
    key = digest()
    claim = await begin(bus, key, "fp")
    await bus.idempotency_abandon("c0ffee", key, "forged-token")
    assert (await begin(bus, key, "fp")).state == "in_flight"
    assert not await bus.idempotency_finish("c0ffee", key, "forged-token", "x", 5)
    await bus.idempotency_abandon("c0ffee", key, claim.token)
    assert (await begin(bus, key, "fp-other")).state == "new"


async def test_idempotency_claims_and_answers_expire(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = digest()
    stale = await begin(a, key, "fp", TTL)
    await asyncio.sleep(TTL + 0.15)
    # The holder died: its claim expired, another takes the key, and the old holder can
    # neither store nor free it any more.
    fresh = await begin(b, key, "fp")
    assert fresh.state == "new"
    assert not await a.idempotency_finish("c0ffee", key, stale.token, "late", 5)
    await a.idempotency_abandon("c0ffee", key, stale.token)
    assert (await begin(a, key, "fp")).state == "in_flight"
    assert await b.idempotency_finish("c0ffee", key, fresh.token, "answer", TTL)
    assert (await begin(a, key, "fp")).state == "done"
    await asyncio.sleep(TTL + 0.15)
    assert (await begin(a, key, "fp-new")).state == "new"


async def test_idempotency_keys_live_apart_from_chats(bus: Bus) -> None:
    key = digest()
    claim = await begin(bus, key, "fp")
    assert await bus.idempotency_finish("c0ffee", key, claim.token, "answer", 5)
    assert await bus.record(key) == ChatRecord()
    assert await bus.messages(key, after=0) == []
    with pytest.raises(ValueError, match="chat key"):
        await begin(bus, "a{b", "fp")
    with pytest.raises(ValueError, match="chat key"):
        await begin(bus, key, "fp", client="c}")


async def test_a_client_holds_at_most_its_cap(make: BusFactory) -> None:
    """Claims and answers count alike; at the cap a new key is refused with the time until
    the client's soonest entry expires, while its keys already held answer as usual. Other
    clients are not affected, and expiry frees room."""
    a, b = await make(), await make()
    held = [digest() for _ in range(3)]
    first = await begin(a, held[0], "fp", max_per_client=3)
    assert await a.idempotency_finish("c0ffee", held[0], first.token, "kept", TTL)
    for key in held[1:]:
        assert (await begin(b, key, "fp", 5, max_per_client=3)).state == "new"
    refused = await begin(a, digest(), "fp", max_per_client=3)
    assert (refused.state, refused.limit) == ("full", "client")
    assert 0 < refused.retry_after_s <= TTL
    assert (await begin(b, held[0], "fp", max_per_client=3)).state == "done"
    assert (await begin(b, held[1], "fp", max_per_client=3)).state == "in_flight"
    assert (await begin(a, digest(), "fp", client="other", max_per_client=3)).state == "new"
    await asyncio.sleep(TTL + 0.15)
    assert (await begin(a, digest(), "fp", max_per_client=3)).state == "new"


async def test_an_abandoned_claim_frees_its_place(bus: Bus) -> None:
    key = digest()
    claim = await begin(bus, key, "fp", max_per_client=1)
    assert (await begin(bus, digest(), "fp", max_per_client=1)).state == "full"
    await bus.idempotency_abandon("c0ffee", key, claim.token)
    assert (await begin(bus, digest(), "fp", max_per_client=1)).state == "new"


async def test_the_store_holds_at_most_its_total(make: BusFactory) -> None:
    """Stored answers of all clients count towards `max_total` (on Redis, the fleet's count
    as read up to IDEMPOTENCY_COUNT_TTL_S ago); at it, new keys are refused for everyone and
    held keys still replay. `idempotency_size` is the count."""
    a, b = await make(), await make()
    before = await a.idempotency_size()
    total = before + 3
    keys = []
    for n in range(3):
        key = digest()
        claim = await begin(a, key, "fp", client=f"client{n}", max_total=total)
        assert claim.state == "new"
        assert await a.idempotency_finish(f"client{n}", key, claim.token, "answer", 60)
        keys.append(key)
    assert await b.idempotency_size() == total
    await asyncio.sleep(IDEMPOTENCY_COUNT_TTL_S + 0.1)  # b's view of the count refreshes
    refused = await begin(b, digest(), "fp", client="newcomer", max_total=total)
    assert (refused.state, refused.limit) == ("full", "total")
    assert 0 < refused.retry_after_s <= 60 + IDEMPOTENCY_BUCKET_S
    assert (await begin(b, keys[0], "fp", client="client0", max_total=total)).state == "done"
    assert (await begin(b, digest(), "fp", client="newcomer", max_total=total + 1)).state == "new"


async def test_at_the_total_a_client_under_the_floor_is_served_unkept(make: BusFactory) -> None:
    """Whoever filled the store is refused at the total; a client holding fewer entries than
    the floor is told to go on without its answer kept ("unkept": nothing held for it)."""
    a, b = await make(), await make()
    total = await a.idempotency_size() + 2
    for _ in range(2):
        key = digest()
        claim = await begin(a, key, "fp", client="filler", max_total=total)
        assert await a.idempotency_finish("filler", key, claim.token, "answer", 60)
    await asyncio.sleep(IDEMPOTENCY_COUNT_TTL_S + 0.1)
    held = await b.idempotency_size()
    for _ in range(3):  # each time anew: nothing was held for the first
        light = await begin(
            b, digest(), "fp", client="customer", max_total=total, floor_per_client=2
        )
        assert light.state == "unkept"
    heavy = await begin(b, digest(), "fp", client="filler", max_total=total, floor_per_client=2)
    assert (heavy.state, heavy.limit) == ("full", "total")
    assert await b.idempotency_size() == held
    # Without a floor, everyone new is refused at the total, as before.
    none = await begin(b, digest(), "fp", client="customer", max_total=total)
    assert (none.state, none.limit) == ("full", "total")


# -- Redis only: a claim rides through a failover like every call a customer waits for -----


@pytest.fixture
async def proxy(redis_client: Redis) -> AsyncIterator[Proxy]:
    p = Proxy(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    await p.start()
    yield p
    await p.stop()


async def test_a_claim_waits_through_a_short_outage(
    proxy: Proxy, prefix: str, redis_client: Redis
) -> None:
    """The fleet count read before a claim waits through a failover as the claim does
    (`BFF_REDIS_FAILOVER_WAIT_S`); the count a scrape reads does not wait."""
    behind = RedisBus(proxy.url, prefix=prefix, op_timeout_s=0.5, failover_wait_s=5)
    try:
        proxy.refusing = True
        proxy.cut_all()
        with pytest.raises(BusUnavailableError):
            await behind.idempotency_size()

        async def recover() -> None:
            await asyncio.sleep(0.5)
            proxy.refusing = False

        recovery = asyncio.create_task(recover())
        claim = await begin(behind, digest(), "fp")
        await recovery
        assert claim.state == "new"
    finally:
        await behind.aclose()
        await delete_prefix(redis_client, prefix)
