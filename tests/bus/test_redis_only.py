"""What only the Redis bus has: key layout, TTLs, one pub/sub connection, reconnects, data
loss, timeouts and URL forms."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.bus import MemoryBus, RedisBus, make_bus
from app.bus.redis_url import RedisTarget, parse_redis_url
from app.errors import BusUnavailableError
from app.events import EventKind
from app.models import TranscriptEntry
from harness.redis import REDIS_URL
from tests.bus.proxy import Proxy
from tests.bus.support import delete_prefix, drain, take
from tests.components import redis_or_skip

# FLUSHDB must not hit data of anyone else sharing the test server: it runs on its own db.
FLUSH_URL = os.environ.get(
    "BFF_TEST_REDIS_FLUSH_URL", re.sub(r"(/\d*)?$", "/15", REDIS_URL.split("?")[0], count=1)
)
RETENTION_S = 600


def new_chat() -> str:
    return secrets.token_hex(16)


def msgs(*indices: int) -> list[TranscriptEntry]:
    return [TranscriptEntry(i, {"index": i, "text": f"m{i}"}) for i in indices]


@pytest.fixture
async def rbus(prefix: str, redis_client: Redis) -> AsyncIterator[RedisBus]:
    bus = RedisBus(REDIS_URL, prefix=prefix, retention_s=RETENTION_S, op_timeout_s=1.0)
    yield bus
    await bus.aclose()
    await delete_prefix(redis_client, prefix)


async def pubsub_clients(client: Redis, name: str) -> list[dict[str, str]]:
    return [c for c in await client.client_list() if c.get("name") == name]


async def test_keys_are_hash_tagged_per_chat(
    rbus: RedisBus, redis_client: Redis, prefix: str
) -> None:
    chats = [new_chat() for _ in range(3)]
    for chat in chats:
        fence = await rbus.acquire(chat, 5)
        assert fence is not None
        await rbus.commit(fence, msgs(1, 2))
        await rbus.set_cookies(chat, {"a": "1"})
        await rbus.note_interest(chat, "ref", 5)
    await asyncio.sleep(0.8)  # the transcript budget's flush (one slot of its own)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    budget = {f"{prefix}:{{transcripts}}:{name}" for name in ("held", "expiry")}
    assert budget <= set(keys)
    per_chat = [k for k in keys if k != f"{prefix}:interest" and k not in budget]
    assert len(per_chat) == 3 * 5  # lease, epoch, log, meta, ref
    pattern = re.compile(
        rf"^{re.escape(prefix)}:\{{([0-9a-f]{{32}})\}}:(lease|epoch|log|meta|ref)$"
    )
    for key in per_chat:
        match = pattern.match(key)
        assert match, key
        assert match.group(1) in chats


async def test_retention_ttl_is_set(rbus: RedisBus, redis_client: Redis, prefix: str) -> None:
    chat = new_chat()
    fence = await rbus.acquire(chat, 5)
    assert fence is not None
    await rbus.commit(fence, msgs(1))
    for name in ("meta", "log", "epoch"):
        ttl = await redis_client.pttl(f"{prefix}:{{{chat}}}:{name}")
        assert RETENTION_S * 1000 - 5000 < ttl <= RETENTION_S * 1000, name
    lease_ttl = await redis_client.pttl(f"{prefix}:{{{chat}}}:lease")
    assert 0 < lease_ttl <= 5000
    for chat2 in (new_chat(), new_chat()):
        await rbus.set_cookies(chat2, {"a": "1"})
        await rbus.claim_indexless(chat2, 3)
        assert await redis_client.pttl(f"{prefix}:{{{chat2}}}:meta") > 0


async def test_one_pubsub_connection_for_all_subscriptions(
    rbus: RedisBus, redis_client: Redis, prefix: str
) -> None:
    chats = [new_chat() for _ in range(4)]
    channels = [f"{prefix}:{{{c}}}:events" for c in chats]
    async with (
        rbus.subscribe(chats[0]),
        rbus.subscribe(chats[0]),
        rbus.subscribe(chats[1]),
        rbus.subscribe(chats[2]),
        rbus.subscribe(chats[3]),
    ):
        assert len(await pubsub_clients(redis_client, rbus.pubsub_client_name)) == 1
        counts = dict(await redis_client.pubsub_numsub(*channels))
        assert counts == dict.fromkeys(channels, 1)
    counts = dict(await redis_client.pubsub_numsub(*channels))
    assert counts == dict.fromkeys(channels, 0)  # the last local subscriber left: UNSUBSCRIBE
    assert len(await pubsub_clients(redis_client, rbus.pubsub_client_name)) == 1


async def test_reconnect_after_pubsub_connection_killed(
    rbus: RedisBus, redis_client: Redis
) -> None:
    chat = new_chat()
    fence = await rbus.acquire(chat, 10)
    assert fence is not None
    async with rbus.subscribe(chat) as sub, rbus.subscribe(chat) as other:
        await rbus.commit(fence, msgs(1))
        assert [e.index for e in await take(sub, 1)] == [1]
        (victim,) = await pubsub_clients(redis_client, rbus.pubsub_client_name)
        await redis_client.client_kill_filter(_id=victim["id"])
        for s in (sub, other):
            assert [e.kind for e in await take(s, 1)] == [EventKind.RESYNC]
            assert await drain(s) == []  # exactly one
        (again,) = await pubsub_clients(redis_client, rbus.pubsub_client_name)
        assert again["id"] != victim["id"]
        await rbus.commit(fence, msgs(2))
        assert [e.index for e in await take(sub, 1)] == [2]
        assert [e.index for e in await take(other, 1)] == [2]


async def test_keepalive_keeps_the_connection(prefix: str, redis_client: Redis) -> None:
    bus = RedisBus(REDIS_URL, prefix=prefix, keepalive_s=0.1, op_timeout_s=1.0)
    try:
        chat = new_chat()
        fence = await bus.acquire(chat, 10)
        assert fence is not None
        async with bus.subscribe(chat) as sub:
            (before,) = await pubsub_clients(redis_client, bus.pubsub_client_name)
            await asyncio.sleep(0.6)  # several keepalive rounds
            await bus.commit(fence, msgs(1))
            assert [e.index for e in await take(sub, 1)] == [1]  # no RESYNC
            (after,) = await pubsub_clients(redis_client, bus.pubsub_client_name)
            assert after["id"] == before["id"]
            assert "ping" in after["cmd"]
    finally:
        await bus.aclose()
        await delete_prefix(redis_client, prefix)


async def test_flushdb_midway(prefix: str) -> None:
    await redis_or_skip(FLUSH_URL)
    admin = Redis.from_url(FLUSH_URL, decode_responses=True)
    bus = RedisBus(FLUSH_URL, prefix=prefix, op_timeout_s=1.0)
    try:
        chat = new_chat()
        old = await bus.acquire(chat, 10)
        assert old is not None
        async with bus.subscribe(chat) as sub:
            await bus.commit(old, msgs(1, 2))
            assert len(await take(sub, 2)) == 2
            foreign = [k async for k in admin.scan_iter() if not k.startswith(f"{prefix}:")]
            if foreign:  # someone else uses this db: lose only our data instead
                await delete_prefix(admin, prefix)
            else:
                await admin.flushdb()
            assert (await bus.record(chat)).cursor == 0
            assert await bus.messages(chat, 0) == []
            new = await bus.acquire(chat, 10)
            assert new is not None
            assert await bus.commit(old, msgs(3)) is None  # the old token is still fenced out
            events = await bus.commit(new, msgs(1, 2, 3))  # rebuilt from index 1
            assert events is not None
            assert [(e.index, e.prev) for e in events] == [(1, 0), (2, 1), (3, 2)]
            assert await take(sub, 3) == events
            assert (await bus.record(chat)).cursor == 3
    finally:
        await bus.aclose()
        await delete_prefix(admin, prefix)
        await admin.aclose()


@pytest.fixture
async def proxy(redis_client: Redis) -> AsyncIterator[Proxy]:
    port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    p = Proxy(port)
    await p.start()
    yield p
    await p.stop()


async def test_redis_outage_then_recovery(proxy: Proxy, prefix: str, redis_client: Redis) -> None:
    behind = RedisBus(proxy.url, prefix=prefix, op_timeout_s=0.5, reconnect_max_s=0.2)
    direct = RedisBus(REDIS_URL, prefix=prefix)
    try:
        chat = new_chat()
        fence = await direct.acquire(chat, 10)
        assert fence is not None
        async with behind.subscribe(chat) as sub:
            proxy.refusing = True
            proxy.cut_all()
            await asyncio.sleep(0.2)
            await direct.commit(fence, msgs(1))  # lost for `behind`: it is disconnected
            with pytest.raises(BusUnavailableError):
                await behind.record(chat)
            assert not await behind.ping()
            await asyncio.sleep(0.6)  # several failed reconnects
            proxy.refusing = False
            assert [e.kind for e in await take(sub, 1)] == [EventKind.RESYNC]
            assert [m.index for m in await behind.messages(chat, 0)] == [1]
            await direct.commit(fence, msgs(2))
            assert [e.index for e in await take(sub, 1)] == [2]
    finally:
        await behind.aclose()
        await direct.aclose()
        await delete_prefix(redis_client, prefix)


async def test_renewing_many_leases_is_one_round_trip(
    proxy: Proxy, prefix: str, redis_client: Redis
) -> None:
    behind = RedisBus(proxy.url, prefix=prefix, op_timeout_s=5)
    try:
        fences = [await behind.acquire(new_chat(), 30) for _ in range(200)]
        assert all(fences)
        held = [f for f in fences if f is not None]
        await behind.renew(held, 30)  # the connection and the script are ready now
        proxy.delay_s = 0.1  # a round trip now costs at least 0.2 s
        started = time.monotonic()
        assert await behind.renew(held, 30) == frozenset(held)
        took = time.monotonic() - started
        # One call per chat would take 200 round trips (40 s); a pipeline takes one.
        assert took < 5 * 0.2, took
    finally:
        proxy.delay_s = 0
        await behind.aclose()
        await delete_prefix(redis_client, prefix)


async def test_half_open_pubsub_connection_is_detected(
    proxy: Proxy, prefix: str, redis_client: Redis
) -> None:
    behind = RedisBus(proxy.url, prefix=prefix, op_timeout_s=0.3, keepalive_s=0.2)
    direct = RedisBus(REDIS_URL, prefix=prefix)
    try:
        chat = new_chat()
        fence = await direct.acquire(chat, 10)
        assert fence is not None
        async with behind.subscribe(chat) as sub:
            proxy.silence_all()  # no error, no FIN: just silence
            await direct.commit(fence, msgs(1))
            got = await take(sub, 1, within=3)
            assert [e.kind for e in got] == [EventKind.RESYNC]
            await direct.commit(fence, msgs(2))
            assert [e.index for e in await take(sub, 1)] == [2]
    finally:
        await behind.aclose()
        await direct.aclose()
        await delete_prefix(redis_client, prefix)


# -- failures become our errors, within the op timeout --------------------------------------


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts and never answers: a hung Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hang(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_hung_redis_times_out(silent_server: str) -> None:
    bus = RedisBus(silent_server, op_timeout_s=0.3, reconnect_max_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(BusUnavailableError):
            await bus.record(new_chat())
        with pytest.raises(BusUnavailableError):
            await bus.acquire(new_chat(), 1)
        assert not await bus.ping()
        with pytest.raises(BusUnavailableError):
            async with bus.subscribe(new_chat()):
                pass
        assert time.monotonic() - started < 3
    finally:
        await bus.aclose()


async def test_unreachable_redis_is_unavailable() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", op_timeout_s=0.3)
    try:
        with pytest.raises(BusUnavailableError):
            await bus.messages(new_chat(), 0)
        assert not await bus.ping()
    finally:
        await bus.aclose()


# -- URLs and construction ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:1/2", RedisTarget("direct", url="redis://h:1/2")),
        ("rediss://u:p@h/0", RedisTarget("direct", url="rediss://u:p@h/0", ssl=True)),
        (
            "unix:///run/redis.sock?db=1",
            RedisTarget("direct", url="unix:///run/redis.sock", options={"db": 1}),
        ),
        (
            "redis://h/0?socket_timeout=0.5&socket_connect_timeout=3",
            RedisTarget(
                "direct",
                url="redis://h/0",
                options={"socket_timeout": 0.5, "socket_connect_timeout": 3.0},
            ),
        ),
        (
            f"rediss://h/0?ssl_ca_certs={__file__}&ssl_cert_reqs=optional&ssl_check_hostname=no",
            RedisTarget(
                "direct",
                url="rediss://h/0",
                ssl=True,
                options={
                    "ssl_ca_certs": __file__,
                    "ssl_cert_reqs": "optional",
                    "ssl_check_hostname": False,
                },
            ),
        ),
        (
            "redis+sentinel://:data@s1/svc?sentinel_password=s%26p&sentinel_username=admin",
            RedisTarget(
                "sentinel",
                hosts=(("s1", 26379),),
                service_name="svc",
                password="data",
                options={"sentinel_password": "s&p", "sentinel_username": "admin"},
            ),
        ),
        (
            f"rediss+sentinel://s1/svc?sentinel_ssl=false&ssl_certfile={__file__}"
            f"&ssl_keyfile={__file__}",
            RedisTarget(
                "sentinel",
                hosts=(("s1", 26379),),
                service_name="svc",
                ssl=True,
                options={
                    "sentinel_ssl": False,
                    "ssl_certfile": __file__,
                    "ssl_keyfile": __file__,
                },
            ),
        ),
        (
            "rediss+cluster://n1:7000?socket_timeout=1&ssl_cert_reqs=none",
            RedisTarget(
                "cluster",
                hosts=(("n1", 7000),),
                ssl=True,
                options={"socket_timeout": 1.0, "ssl_cert_reqs": "none"},
            ),
        ),
        (
            "redis+sentinel://s1:26380,s2,[::1]:26381/mymaster/3",
            RedisTarget(
                "sentinel",
                hosts=(("s1", 26380), ("s2", 26379), ("::1", 26381)),
                service_name="mymaster",
                db=3,
            ),
        ),
        (
            "rediss+sentinel://user:p%40ss@s1:1/svc",
            RedisTarget(
                "sentinel",
                hosts=(("s1", 1),),
                service_name="svc",
                username="user",
                password="p@ss",
                ssl=True,
            ),
        ),
        (
            "redis+cluster://n1:7000,n2:7001,n3",
            RedisTarget("cluster", hosts=(("n1", 7000), ("n2", 7001), ("n3", 6379))),
        ),
        (
            "rediss+cluster://:secret@n1:7000/",
            RedisTarget("cluster", hosts=(("n1", 7000),), password="secret", ssl=True),
        ),
    ],
)
def test_parse_redis_url(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:6379",
        "http://h:1",
        "redis+foo://h:1",
        "redis+sentinel://h:1",  # no service name
        "redis+sentinel://h:1/svc/notadb",
        "redis+sentinel://h:1/svc/0/extra",
        "redis+sentinel:///svc",  # no host
        "redis+sentinel://h:port/svc",
        "redis+cluster://n1:7000/3",  # cluster has no db
        "redis://h/0?unknown=1",  # a typo must not pass silently
        "redis://h/0?ssl_ca_certs=/etc/hosts",  # TLS options need a TLS scheme
        "rediss://h/0?ssl_ca_certs=/no/such/file",
        "rediss://h/0?ssl_certfile=/etc/hosts",  # without its key
        "rediss://h/0?ssl_cert_reqs=maybe",
        "rediss://h/0?ssl_check_hostname=perhaps",
        "redis://h/0?socket_timeout=0",
        "redis://h/0?socket_timeout=soon",
        "redis+cluster://n1?sentinel_password=x",  # a sentinel option elsewhere
        "redis://h/0?db=1",  # the db of a TCP URL is its path
        "unix:///s.sock?db=one",
    ],
)
def test_parse_redis_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match=r"Redis URL|Sentinel URL|Cluster URL"):
        parse_redis_url(url)


def test_parse_errors_never_show_a_password() -> None:
    for url in (
        "redis+sentinel://:hunter2@h:port/svc",
        "redis+sentinel://h/svc?sentinel_password=hunter2&sentinel_ssl=maybe",
        "redis+sentinel://h/svc?sentinel_password=hunter2&bogus=1",
    ):
        with pytest.raises(ValueError, match="Redis URL") as caught:
            parse_redis_url(url)
        assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis+sentinel://127.0.0.1:1/mymaster/1", "redis+cluster://127.0.0.1:1,127.0.0.1:2"]
)
async def test_sentinel_and_cluster_buses_build_without_connecting(url: str) -> None:
    bus = make_bus(url, prefix="p", op_timeout_s=0.2)
    assert isinstance(bus, RedisBus)
    await bus.aclose()


async def test_make_bus() -> None:
    memory = make_bus(None, retention_s=5, subscriber_buffer=3)
    assert isinstance(memory, MemoryBus)
    await memory.aclose()
    with pytest.raises(ValueError, match="prefix"):
        make_bus(REDIS_URL, prefix="a{b}")


async def test_outbox_items_of_the_old_shared_layout_are_adopted(
    rbus: RedisBus, redis_client: Redis, prefix: str
) -> None:
    """Before per-kind queues every kind shared `{outbox}:due`/`:items`/`:done`; what an older
    version left there (or wrote during a rolling upgrade) is delivered, not orphaned."""
    old = f"{prefix}:{{outbox}}"
    await redis_client.zadd(f"{old}:due", {"push:c:1": 1, "offline:abc": 2, "junk": 3})
    await redis_client.hset(
        f"{old}:items", mapping={"push:c:1": "p1", "offline:abc": "o1", "junk": "j"}
    )
    await redis_client.hset(f"{old}:meta", mapping={"a:offline:abc": 3})
    await redis_client.zadd(f"{old}:done", {"push:c:0": time.time() * 1000 + 60_000})
    (claim,) = (await rbus.outbox_claim("offline", 10, 5)).claims
    assert (claim.id, claim.payload, claim.attempt, claim.kind) == (
        "offline:abc",
        "o1",
        4,
        "offline",
    )
    batch = await rbus.outbox_claim("push", 10, 5)
    assert [(c.id, c.payload, c.attempt) for c in batch.claims] == [("push:c:1", "p1", 1)]
    assert batch.held.bytes == len("push:c:1p1")
    assert not [k async for k in redis_client.scan_iter(match=f"{old}:due")]
    assert not [k async for k in redis_client.scan_iter(match=f"{old}:items")]
    assert not [k async for k in redis_client.scan_iter(match=f"{old}:done")]
    assert await rbus.outbox_done(claim, done_ttl_s=5, remember=10)
    assert (await rbus.outbox_held("offline")).bytes == 0
