"""One wire format for chat events: the memory bus builds its events with `app.events`, the
Redis COMMIT script writes them in Lua, and for the same commits both say the same bytes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.bus import MemoryBus, RedisBus
from app.events import decode_events, encode_events
from app.models import ChatState, TranscriptEntry, UpstreamStatus
from harness.redis import REDIS_URL
from tests.bus.support import delete_prefix

PARTICIPANTS = (
    # Keys out of order, text that JSON escapes, and text it does not.
    {"type": "Customer", "participantId": "7", "nickname": 'Zoë "Z" </script>'},
    {"participantId": "12", "type": "Agent", "nickname": "Agent 🤖", "extra": {"b": 1, "a": [2]}},
)
WAITING = ChatState("WaitingForAgent", ("SendMessage",), PARTICIPANTS[:1])
CHATTING = ChatState("Chatting", ("SendMessage", "Complete"), PARTICIPANTS)


def message(index: int, **body: object) -> TranscriptEntry:
    return TranscriptEntry(index, {"type": "Text", "index": index, **body})


@dataclass
class Commit:
    messages: list[TranscriptEntry] = field(default_factory=list)
    state: ChatState | None = None
    status: UpstreamStatus | None = None
    ended: bool = False


# Every kind of event, changes and repeats (which publish nothing), messages out of order and
# again, numbers JSON keeps exactly only as text.
COMMITS = [
    Commit([message(1, text="hello"), message(2, text='line\nbreak\ttab \\ "q"')], WAITING),
    Commit([message(2, text="again"), message(3, big=2**63 + 1, small=1e-7)], WAITING),
    Commit(status=UpstreamStatus.DEGRADED),
    Commit(state=WAITING, status=UpstreamStatus.DEGRADED),
    Commit([message(5, text="ünïcødé ✓"), message(4, nested={"z": [1, {"y": None}]})], CHATTING),
    Commit(status=UpstreamStatus.OK),
    Commit([message(6, text="bye")], ChatState("Idle", (), PARTICIPANTS), ended=True),
    Commit(ended=True),
]


@pytest.fixture
async def rbus(prefix: str, redis_client: Redis) -> AsyncIterator[RedisBus]:
    bus = RedisBus(REDIS_URL, prefix=prefix, op_timeout_s=2.0)
    yield bus
    await bus.aclose()
    await delete_prefix(redis_client, prefix)


async def published(pubsub: PubSub) -> bytes:
    async with asyncio.timeout(3):
        while True:
            item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if item is not None:
                return bytes(item["data"])


async def test_memory_and_lua_commit_the_same_event_bytes(rbus: RedisBus, prefix: str) -> None:
    chat = secrets.token_hex(16)
    memory = MemoryBus()
    listener = Redis.from_url(REDIS_URL)
    pubsub = listener.pubsub()
    # The channel every instance subscribes to (key layout: ARCHITECTURE.md, Cluster rules).
    await pubsub.subscribe(f"{prefix}:{{{chat}}}:events")
    try:
        memory_fence = await memory.acquire(chat, 30)
        redis_fence = await rbus.acquire(chat, 30)
        assert memory_fence is not None and redis_fence is not None
        kinds: list[str] = []
        for number, commit in enumerate(COMMITS, 1):
            args = (commit.messages,)
            options = {"state": commit.state, "status": commit.status, "ended": commit.ended}
            from_memory = await memory.commit(memory_fence, *args, **options)
            from_redis = await rbus.commit(redis_fence, *args, **options)
            assert from_memory is not None and from_redis is not None
            if not from_memory:
                # Nothing changed: the script publishes nothing either.
                assert from_redis == [], f"commit {number}"
                continue
            wire = await published(pubsub)
            assert wire == encode_events(from_memory).encode(), f"commit {number}"
            assert decode_events(wire) == from_memory, f"commit {number}"
            assert from_redis == from_memory, f"commit {number}"
            assert [e.raw for e in from_redis] == [e.raw for e in from_memory]
            kinds += [e.kind.value for e in from_memory]
        # The sequence did exercise every kind a commit publishes.
        assert set(kinds) == {"message", "state", "status", "end"}
        assert kinds.count("message") == 6
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await memory.aclose()
