"""One contract suite, run against both buses: every guarantee documented in `app/bus/base.py`."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from app.bus import Bus, ChatRecord, Fence
from app.bus.chats import CachedMessages, TranscriptLimits
from app.bus.hooks import ClaimBatch, OutboxHeld, OutboxItem, OutboxQuota
from app.errors import OutboxFullError
from app.events import ChatEvent, EventKind
from app.models import ChatState, TranscriptEntry, UpstreamStatus
from tests.bus.support import BusFactory, drain, take

TTL = 0.3


def new_chat() -> str:
    return secrets.token_hex(16)


def msgs(*indices: int, tag: str = "") -> list[TranscriptEntry]:
    return [TranscriptEntry(i, {"index": i, "type": "text", "text": f"m{i}{tag}"}) for i in indices]


STATE = ChatState("Connected", ("SendMessage", "Complete"), ({"id": "7", "type": "Agent"},))


async def held(bus: Bus, chat: str, ttl: float = 5.0) -> Fence:
    fence = await bus.acquire(chat, ttl)
    assert fence is not None
    return fence


# -- Lease ----------------------------------------------------------------------------------


async def test_lease_is_exclusive(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    assert fence.chat == chat
    assert await bus.acquire(chat, 5) is None
    # Another chat is independent.
    assert await bus.acquire(new_chat(), 5) is not None


async def test_concurrent_acquire_has_one_winner(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    results = await asyncio.gather(*(x.acquire(chat, 5) for x in [a, b] * 10))
    assert sum(r is not None for r in results) == 1


async def test_lease_expires_and_is_taken_over_with_higher_epoch(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    first = await held(a, chat, TTL)
    await asyncio.sleep(TTL + 0.15)
    second = await held(b, chat, 5)
    assert second.epoch > first.epoch
    assert second.token != first.token


async def test_epoch_rises_with_every_grant(bus: Bus) -> None:
    chat = new_chat()
    epochs = []
    for _ in range(3):
        fence = await held(bus, chat)
        epochs.append(fence.epoch)
        await bus.release(fence)
    assert epochs == sorted(set(epochs))


async def test_renew_only_by_holder(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat, TTL)
    forged = Fence(chat, "not-the-token", fence.epoch)
    assert await bus.renew([forged], 5) == frozenset()
    for _ in range(3):
        await asyncio.sleep(TTL / 2)
        assert await bus.renew([fence], TTL) == {fence}
    # Renewed past its first ttl: still held.
    assert await bus.acquire(chat, 5) is None


async def test_renew_fails_after_expiry(bus: Bus) -> None:
    fence = await held(bus, new_chat(), TTL)
    await asyncio.sleep(TTL + 0.15)
    assert await bus.renew([fence], 5) == frozenset()


async def test_renew_many_at_once_answers_exactly_the_held(make: BusFactory) -> None:
    a, b = await make(), await make()
    mine = [await held(a, new_chat(), 5) for _ in range(5)]
    expired = await held(a, new_chat(), 0.2)
    taken = await held(a, new_chat(), 0.2)
    await asyncio.sleep(0.35)
    thief = await held(b, taken.chat, 5)
    forged = Fence(mine[0].chat, "not-the-token", mine[0].epoch)
    assert await a.renew([], TTL) == frozenset()
    answer = await a.renew([*mine, expired, taken, forged], TTL)
    assert answer == frozenset(mine)
    # Renewed to the short ttl and again before it ran out: still held; the thief's lease
    # was left alone.
    await asyncio.sleep(TTL * 0.75)
    assert await a.renew(mine, TTL) == frozenset(mine)
    for fence in mine:
        assert await b.acquire(fence.chat, 5) is None
    assert await b.renew([thief], 5) == {thief}


async def test_release_only_by_holder(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    fence = await held(a, chat)
    await b.release(Fence(chat, "not-the-token", fence.epoch))
    assert await b.acquire(chat, 5) is None
    await a.release(fence)
    second = await held(b, chat)  # at once, no ttl wait
    # Releasing a lost lease is a no-op: it does not end the new holder's lease.
    await a.release(fence)
    assert await a.acquire(chat, 5) is None
    assert await b.renew([second], 5) == {second}


# -- fenced commit ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["takeover", "expiry", "release"])
async def test_commit_is_fenced(make: BusFactory, how: str) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    old = await held(a, chat, TTL)
    assert await a.commit(old, msgs(1)) is not None
    async with b.subscribe(chat) as sub:
        if how == "release":
            await a.release(old)
        else:
            await asyncio.sleep(TTL + 0.15)
        if how == "takeover":
            await held(b, chat)
        before = await b.record(chat)
        rejected = await a.commit(
            old, msgs(2), state=STATE, status=UpstreamStatus.DEGRADED, ended=True
        )
        assert rejected is None
        assert await b.record(chat) == before
        assert [m.index for m in await b.messages(chat, 0)] == [1]
        assert await drain(sub) == []  # published nothing


async def test_commit_with_forged_token_is_rejected(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    assert await bus.commit(Fence(chat, "forged", fence.epoch), msgs(1)) is None
    assert await bus.record(chat) == ChatRecord()


# -- commit contents and event order ------------------------------------------------------


async def test_commit_orders_events_messages_state_status_end(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    async with bus.subscribe(chat) as sub:
        events = await bus.commit(
            fence, msgs(3, 1, 2), state=STATE, status=UpstreamStatus.DEGRADED, ended=True
        )
        assert events is not None
        assert [e.kind for e in events] == [EventKind.MESSAGE] * 3 + [
            EventKind.STATE,
            EventKind.STATUS,
            EventKind.END,
        ]
        assert [(e.index, e.prev) for e in events[:3]] == [(1, 0), (2, 1), (3, 2)]
        assert events[0].data == msgs(1)[0].body
        assert events[3].data == STATE.to_json()
        assert events[4].data == {"upstream": "degraded"}
        assert all(e.index is None for e in events[3:])
        assert await take(sub, 6) == events
    record = await bus.record(chat)
    assert record == ChatRecord(cursor=3, state=STATE, status=UpstreamStatus.DEGRADED, ended=True)


async def test_prev_chains_across_commits(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, msgs(1, 2))
    events = await bus.commit(fence, msgs(5, 7))
    assert events is not None
    assert [(e.index, e.prev) for e in events] == [(5, 2), (7, 5)]


async def test_replayed_commit_is_harmless(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, msgs(1, 2, 3), state=STATE)
    async with bus.subscribe(chat) as sub:
        events = await bus.commit(fence, msgs(2, 3, 4, tag="-replayed"), state=STATE)
        assert events is not None
        assert [(e.kind, e.index, e.prev) for e in events] == [(EventKind.MESSAGE, 4, 3)]
        assert await bus.commit(fence, msgs(1, 2, 3, 4)) == []
        assert await drain(sub) == events
    stored = await bus.messages(chat, 0)
    assert stored == msgs(1, 2, 3) + msgs(4, tag="-replayed")
    assert (await bus.record(chat)).cursor == 4


async def test_unchanged_state_and_status_publish_nothing(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    assert await bus.commit(fence, status=UpstreamStatus.OK) == []  # OK is the default
    await bus.commit(fence, state=STATE, status=UpstreamStatus.DEGRADED, ended=True)
    again = await bus.commit(fence, state=STATE, status=UpstreamStatus.DEGRADED, ended=True)
    assert again == []
    other = ChatState("Disconnected")
    events = await bus.commit(fence, state=other, status=UpstreamStatus.OK)
    assert events == [
        ChatEvent(EventKind.STATE, other.to_json()),
        ChatEvent(EventKind.STATUS, {"upstream": "ok"}),
    ]
    assert (await bus.record(chat)).state == other


async def test_empty_commit_publishes_nothing(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    async with bus.subscribe(chat) as sub:
        assert await bus.commit(fence) == []
        assert await drain(sub) == []


# -- fan-out -------------------------------------------------------------------------------


async def test_events_before_subscribe_are_not_delivered(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    fence = await held(a, chat)
    async with b.subscribe(chat) as early:
        await a.commit(fence, msgs(1))
        async with b.subscribe(chat) as late:
            await a.commit(fence, msgs(2))
            assert [e.index for e in await take(late, 1)] == [2]
            assert await drain(late) == []
        assert [e.index for e in await take(early, 2)] == [1, 2]


async def test_multiple_subscribers_across_instances(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat, other = new_chat(), new_chat()
    fence = await held(a, chat)
    async with (
        a.subscribe(chat) as s1,
        b.subscribe(chat) as s2,
        b.subscribe(chat) as s3,
        b.subscribe(other) as elsewhere,
    ):
        events = await a.commit(fence, msgs(1, 2), state=STATE)
        assert events is not None
        for sub in (s1, s2, s3):
            assert await take(sub, 3) == events
        assert await drain(elsewhere) == []


async def test_unsubscribe_cleans_up(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    async with bus.subscribe(chat), bus.subscribe(chat):
        pass
    assert bus._hub.count(chat) == 0  # type: ignore[attr-defined]
    assert await bus.commit(fence, msgs(1)) is not None
    async with bus.subscribe(chat) as sub:
        await bus.commit(fence, msgs(2))
        assert [e.index for e in await take(sub, 1)] == [2]
    assert bus._hub.count(chat) == 0  # type: ignore[attr-defined]


async def test_overflow_drops_buffer_and_resyncs_without_blocking(make: BusFactory) -> None:
    bus = await make(subscriber_buffer=4)
    chat = new_chat()
    fence = await held(bus, chat)
    async with bus.subscribe(chat) as sub:
        started = time.monotonic()
        async with asyncio.timeout(2):  # nobody reads: the committer must not wait
            for i in range(1, 31, 3):
                await bus.commit(fence, msgs(i, i + 1, i + 2))
        assert time.monotonic() - started < 2
        await asyncio.sleep(0.2)  # let the Redis reader catch up
        got = await drain(sub)
        assert got[0].kind == EventKind.RESYNC
        assert [e.kind for e in got].count(EventKind.RESYNC) == 1
        assert len(got) <= 4
        # Afterwards live delivery goes on.
        await bus.commit(fence, msgs(31))
        assert [e.index for e in await take(sub, 1)] == [31]
    # A resync means: re-read the cache after the last index seen. Nothing was lost there.
    assert [m.index for m in await bus.messages(chat, 0)] == list(range(1, 32))


async def test_poke_reaches_every_subscriber_and_stores_nothing(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    async with a.subscribe(chat) as s1, b.subscribe(chat) as s2:
        await b.poke(chat)  # type: ignore[attr-defined]
        for sub in (s1, s2):
            assert await take(sub, 1) == [ChatEvent(EventKind.POKE)]
    assert await a.record(chat) == ChatRecord()


async def test_a_cancelled_subscriber_always_ends(bus: Bus) -> None:
    """Cancelled at any moment of subscribing or listening, a subscriber task ends (a poller
    that stops must not hang on its fan-out; on Python 3.11 redis-py can swallow a cancel)."""
    chat = new_chat()

    async def listen() -> None:
        async with bus.subscribe(chat) as sub:
            async for _ in sub:
                pass

    for moment in range(40):
        task = asyncio.create_task(listen())
        for _ in range(moment % 8):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done, f"a subscriber cancelled after {moment % 8} steps did not end"
        assert task.cancelled()
    assert bus._hub.count(chat) == 0  # type: ignore[attr-defined]


async def test_aclose_ends_subscriptions(make: BusFactory) -> None:
    bus = await make()
    chat = new_chat()
    async with bus.subscribe(chat) as sub:
        await bus.aclose()
        async with asyncio.timeout(2):
            assert [e async for e in sub] == []


# -- reads ---------------------------------------------------------------------------------


async def test_messages_after_and_limit(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, msgs(1, 2, 3, 5, 8))
    assert [m.index for m in await bus.messages(chat, 0)] == [1, 2, 3, 5, 8]
    assert [m.index for m in await bus.messages(chat, 2)] == [3, 5, 8]
    assert [m.index for m in await bus.messages(chat, 4)] == [5, 8]
    assert [m.index for m in await bus.messages(chat, 0, limit=2)] == [1, 2]
    assert await bus.messages(chat, 8) == []
    assert await bus.messages(chat, 0, limit=0) == []
    assert (await bus.messages(chat, 4))[0] == msgs(5)[0]


async def test_message_bodies_round_trip_exactly(bus: Bus) -> None:
    chat = new_chat()
    fence = await held(bus, chat)
    body = {
        "index": 1,
        "big": 12345678901234567890,
        "float": 0.1,
        "text": 'héllo "quoted" \\ {braces} :colon: \u2603',
        "nested": {"list": [1, None, True, {}], "empty": []},
    }
    events = await bus.commit(fence, [TranscriptEntry(1, body)])
    assert events is not None
    assert events[0].data == body
    assert await bus.messages(chat, 0) == [TranscriptEntry(1, body)]


async def test_unknown_chat_reads_empty(bus: Bus) -> None:
    chat = new_chat()
    assert await bus.record(chat) == ChatRecord()
    assert await bus.messages(chat, 0) == []


async def test_entries_expire_after_retention(make: BusFactory) -> None:
    bus = await make(retention_s=0.3)
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, msgs(1), state=STATE)
    await bus.set_cookies(chat, {"a": "1"})
    assert (await bus.record(chat)).cursor == 1
    await asyncio.sleep(0.45)
    assert await bus.record(chat) == ChatRecord()
    assert await bus.messages(chat, 0) == []


async def test_claim_indexless(bus: Bus) -> None:
    chat = new_chat()
    assert await bus.claim_indexless(chat, 5) == 0
    assert await bus.claim_indexless(chat, 3) == 5  # never goes back
    assert await bus.claim_indexless(chat, 8) == 5
    assert (await bus.record(chat)).indexless_cursor == 8


async def test_concurrent_indexless_claims_never_overlap(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    uptos = list(range(1, 21))
    previous = await asyncio.gather(
        *(x.claim_indexless(chat, u) for x, u in zip([a, b] * 10, uptos, strict=True))
    )
    given: list[int] = []
    for prev, upto in zip(previous, uptos, strict=True):
        given.extend(range(prev + 1, upto + 1))
    assert sorted(given) == list(range(1, 21))  # every index once, none twice


async def test_cookies_merge_and_delete(bus: Bus) -> None:
    chat = new_chat()
    await bus.set_cookies(chat, {"a": "1", "b": "2"})
    await bus.set_cookies(chat, {"b": "", "c": "x=y; z"})
    await bus.set_cookies(chat, {})
    assert (await bus.record(chat)).cookies == {"a": "1", "c": "x=y; z"}
    await bus.set_cookies(chat, {"a": "", "c": ""})
    assert (await bus.record(chat)).cookies == {}


async def test_completed(bus: Bus) -> None:
    chat = new_chat()
    assert not (await bus.record(chat)).completed
    await bus.mark_completed(chat)
    assert (await bus.record(chat)).completed


async def test_interest_expires(make: BusFactory) -> None:
    a, b = await make(), await make()
    short, long, extended = new_chat(), new_chat(), new_chat()
    await a.note_interest(short, "ref-short", 0.3)
    await b.note_interest(long, "ref-long", 5)
    await a.note_interest(extended, "ref-x", 5)
    await b.note_interest(extended, "ref-x", 0.1)  # the longest interest wins
    assert await a.interested() == {short: "ref-short", long: "ref-long", extended: "ref-x"}
    await asyncio.sleep(0.45)
    assert await b.interested() == {long: "ref-long", extended: "ref-x"}


async def test_invalid_chat_key_is_refused(bus: Bus) -> None:
    for bad in ("", "a{b", "a}b"):
        with pytest.raises(ValueError, match="chat key"):
            await bus.acquire(bad, 1)


async def test_ping(bus: Bus) -> None:
    assert await bus.ping()


# -- Limits: fleet-wide abuse limits ---------------------------------------------------------


async def test_token_bucket_allows_the_burst_then_says_how_long_to_wait(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = new_chat()
    # 60 a minute: one token a second, three at once.
    assert [await x.take("create", key, 60, 3) for x in (a, b, a)] == [0.0, 0.0, 0.0]
    wait = await b.take("create", key, 60, 3)
    assert 0.5 < wait <= 1.0  # shared: the three tokens were taken on two instances
    assert await a.take("create", new_chat(), 60, 3) == 0.0  # another key is independent
    assert await a.take("send", key, 60, 3) == 0.0  # another limit too


async def test_token_bucket_refills(bus: Bus) -> None:
    key = new_chat()
    assert await bus.take("send", key, 600, 1) == 0.0  # ten a second
    assert await bus.take("send", key, 600, 1) > 0.0
    await asyncio.sleep(0.15)
    assert await bus.take("send", key, 600, 1) == 0.0


async def test_holders_are_counted_across_instances(make: BusFactory) -> None:
    a, b = await make(), await make()
    key, other = new_chat(), new_chat()
    assert await a.occupy("streams", key, 3)
    assert await b.occupy("streams", key, 3)
    assert await b.occupy("streams", key, 3)
    assert not await a.occupy("streams", key, 3)
    assert not await b.occupy("streams", key, 3)
    assert await a.occupy("streams", other, 3)  # another key
    assert await a.occupy("long-polls", key, 3)  # another limit
    a.vacate("streams", key)

    # Vacates are written in the background, promptly.
    for _ in range(100):
        if await b.occupy("streams", key, 3):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the vacated place never came free")
    assert not await a.occupy("streams", key, 3)


async def test_concurrent_occupiers_never_exceed_the_limit(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = new_chat()
    granted = await asyncio.gather(*(x.occupy("streams", key, 5) for x in [a, b] * 10))
    assert sum(granted) == 5


async def test_vacating_more_than_occupied_is_ignored(bus: Bus) -> None:
    key = new_chat()
    bus.vacate("streams", key)
    bus.vacate("streams", key)
    assert await bus.occupy("streams", key, 1)
    assert not await bus.occupy("streams", key, 1)


async def test_admitted_members_are_bounded_fleet_wide_and_expire(make: BusFactory) -> None:
    a, b = await make(), await make()
    client, other = new_chat(), new_chat()
    assert await a.admit("keepalive", client, "chat-1", 0.4, 2)
    assert await b.admit("keepalive", client, "chat-2", 5, 2)
    assert not await b.admit("keepalive", client, "chat-3", 5, 2)  # full: nothing changed
    assert await a.admit("keepalive", client, "chat-1", 0.1, 2)  # a member renews, never shorter
    assert await a.admit("keepalive", other, "chat-3", 5, 2)  # another key
    assert await a.admit("sessions", client, "chat-3", 5, 2)  # another name
    await asyncio.sleep(0.55)  # chat-1 expired: its place is free
    assert await b.admit("keepalive", client, "chat-3", 5, 2)
    assert not await a.admit("keepalive", client, "chat-1", 5, 2)


async def test_concurrent_admits_never_exceed_the_limit(make: BusFactory) -> None:
    a, b = await make(), await make()
    key = new_chat()
    members = [f"chat-{n}" for n in range(20)]
    granted = await asyncio.gather(
        *(x.admit("keepalive", key, m, 5, 4) for x, m in zip([a, b] * 10, members, strict=True))
    )
    assert sum(granted) == 4


async def test_reader_presence_is_fleet_wide_and_expires(make: BusFactory) -> None:
    a, b = await make(), await make()
    seen, never = new_chat(), new_chat()
    assert not (await a.record(seen)).readers
    await a.note_reader(seen, 0.3)
    await b.note_reader(seen, 0.1)  # a shorter note never cuts a longer one short
    assert (await b.record(seen)).readers
    assert not (await b.record(never)).readers
    await asyncio.sleep(0.45)
    assert not (await a.record(seen)).readers
    # Presence is independent of the cached chat: it survives nothing but its expiry.
    fence = await a.acquire(seen, 5)
    assert fence is not None
    await a.commit(fence, [TranscriptEntry(1, {"index": 1, "type": "Text"})])
    await b.note_reader(seen, 5)
    record = await a.record(seen)
    assert record.readers and record.cursor == 1


# -- webhook outbox and push records (hooks) --------------------------------------------------


async def test_push_record_watermark_only_rises(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat, other = new_chat(), new_chat()
    assert await a.push_settle(chat) is None
    await a.push_register(chat, handle="handle-1", push_token="tok-1")
    state = await b.push_settle(chat)
    assert state is not None
    assert (state.push_token, state.handle, state.notified, state.end_notified) == (
        "tok-1",
        "handle-1",
        0,
        False,
    )
    assert (state.cursor, state.ended, state.readers) == (0, False, False)
    await b.push_advance(chat, 5, ended=False)
    await a.push_advance(chat, 3, ended=False)  # a late, older hook never lowers it
    state = await a.push_settle(chat)
    assert state is not None and state.notified == 5 and not state.end_notified
    await a.push_advance(chat, 5, ended=True)
    state = await b.push_settle(chat)
    assert state is not None and state.end_notified
    await b.push_advance(other, 9, ended=True)  # no record: nothing is created
    assert await a.push_settle(other) is None


async def test_push_settle_reads_the_commit_and_marks_what_a_reader_saw(make: BusFactory) -> None:
    a, b = await make(), await make()
    chat = new_chat()
    await a.push_register(chat, handle="h", push_token="t")
    fence = await held(a, chat)
    await a.commit(fence, msgs(1, 2, 3))
    state = await b.push_settle(chat)
    assert state is not None
    assert (state.cursor, state.notified, state.readers) == (3, 0, False)
    # With a reader present, what is committed counts as seen.
    await b.note_reader(chat, 5)
    await a.commit(fence, msgs(4), ended=True)
    state = await a.push_settle(chat)
    assert state is not None
    assert (state.readers, state.notified, state.end_notified, state.ended) == (
        True,
        4,
        True,
        True,
    )


ROOMY = OutboxQuota(max_items=100, max_bytes=1 << 20)


def item(item_id: str, payload: str, kind: str = "push") -> OutboxItem:
    return OutboxItem(item_id, payload, kind)


async def test_outbox_put_is_idempotent_and_bounded_by_items(make: BusFactory) -> None:
    a, b = await make(), await make()
    two = OutboxQuota(max_items=2, max_bytes=1 << 20)
    assert await a.outbox_put(item("x1", "p1"), two)
    assert not await b.outbox_put(item("x1", "other"), two)
    assert await b.outbox_put(item("x2", "p2"), two)
    with pytest.raises(OutboxFullError) as full:
        await a.outbox_put(item("x3", "p3"), two)
    assert (full.value.kind, full.value.limit) == ("push", "items")
    assert (await a.outbox_held("push")).items == 2
    batch = await b.outbox_claim("push", 10, 5)
    assert sorted((c.id, c.payload, c.attempt, c.kind) for c in batch.claims) == [
        ("x1", "p1", 1, "push"),
        ("x2", "p2", 1, "push"),
    ]
    for claim in batch.claims:
        assert await a.outbox_done(claim, done_ttl_s=0.4, remember=100)
    assert await a.outbox_held("push") == OutboxHeld(0, 0)
    # Delivered ids are remembered for done_ttl_s: a late put of the same id stores nothing.
    assert not await b.outbox_put(item("x1", "p1"), two)
    await asyncio.sleep(0.55)
    assert await b.outbox_put(item("x1", "p1"), two)


async def test_outbox_bytes_are_counted_and_capped_per_kind(make: BusFactory) -> None:
    a, b = await make(), await make()
    quota = OutboxQuota(max_items=100, max_bytes=100)
    first = item("offline:1", "\u00e9" * 30, "offline")  # 9 + 60 bytes of UTF-8
    assert first.size == 69
    assert await a.outbox_put(first, quota)
    assert await b.outbox_held("offline") == OutboxHeld(1, 69)
    with pytest.raises(OutboxFullError) as full:
        await b.outbox_put(item("offline:2", "x" * 30, "offline"), quota)  # 69 + 39 > 100
    assert (full.value.kind, full.value.limit) == ("offline", "bytes")
    assert await b.outbox_put(item("offline:3", "x" * 22, "offline"), quota)  # 69 + 31 = 100
    # Another kind has its own quota: a full offline outbox refuses no push notice.
    assert await a.outbox_put(item("push:c:1", "y" * 90), quota)
    assert await a.outbox_held("push") == OutboxHeld(1, 98)
    batch = await a.outbox_claim("offline", 10, 5)
    assert batch.held == OutboxHeld(2, 100)
    assert sorted(c.id for c in batch.claims) == ["offline:1", "offline:3"]
    assert await b.outbox_done(batch.claims[0], done_ttl_s=5, remember=100)
    held = await a.outbox_held("offline")
    assert held.items == 1 and held.bytes in (31, 69)
    assert await a.outbox_put(item("offline:2", "x" * 30, "offline"), quota)


async def test_outbox_claims_one_kind_at_a_time(make: BusFactory) -> None:
    a, b = await make(), await make()
    await a.outbox_put(item("push:c:1", "p"), ROOMY)
    await a.outbox_put(item("offline:1", "o", "offline"), ROOMY)
    batch = await b.outbox_claim("offline", 10, 5)
    assert [(c.id, c.kind) for c in batch.claims] == [("offline:1", "offline")]
    assert batch.held == OutboxHeld(1, len("offline:1o"))
    batch = await b.outbox_claim("survey", 10, 5)  # a kind never used is simply empty
    assert (batch.claims, batch.next_due_s, batch.held) == ([], None, OutboxHeld())
    (claim,) = (await b.outbox_claim("push", 10, 5)).claims
    assert claim.id == "push:c:1"
    with pytest.raises(ValueError, match="kind"):
        await a.outbox_put(item("x", "p", "no{tags}"), ROOMY)


async def test_outbox_remembers_at_most_the_latest_delivered_ids(make: BusFactory) -> None:
    a, b = await make(), await make()
    for n in range(4):
        await a.outbox_put(item(f"d{n}", "p"), ROOMY)
        (claim,) = (await b.outbox_claim("push", 10, 5)).claims
        assert await b.outbox_done(claim, done_ttl_s=60, remember=2)
    # d0 and d1 were forgotten (two remembered after them): they may be stored again.
    assert [await a.outbox_put(item(f"d{n}", "p"), ROOMY) for n in range(4)] == [
        True,
        True,
        False,
        False,
    ]


async def test_outbox_claim_is_exclusive_and_expires(make: BusFactory) -> None:
    a, b = await make(), await make()
    for i in range(5):
        await a.outbox_put(item(f"i{i}", f"p{i}"), ROOMY)
    results = await asyncio.gather(*(bus.outbox_claim("push", 2, 0.4) for bus in [a, b] * 4))
    ids = [c.id for batch in results for c in batch.claims]
    assert sorted(ids) == [f"i{i}" for i in range(5)]  # each handed out once
    first = next(c for batch in results for c in batch.claims if c.id == "i0")
    batch = await b.outbox_claim("push", 10, 0.4)
    assert batch.claims == []
    assert batch.next_due_s is not None and 0 < batch.next_due_s <= 0.4
    await asyncio.sleep(0.55)  # the claimer "died": every claim expired
    again = (await b.outbox_claim("push", 10, 5)).claims
    assert sorted(c.id for c in again) == [f"i{i}" for i in range(5)]
    assert {c.attempt for c in again} == {2}
    # The expired claim's token no longer acts on the item.
    assert not await a.outbox_done(first, done_ttl_s=5, remember=100)
    assert not await a.outbox_retry(first, 0)
    assert (await a.outbox_held("push")).items == 5


async def test_outbox_retry_delays_the_item(make: BusFactory) -> None:
    a, b = await make(), await make()
    assert await a.outbox_claim("push", 10, 5) == ClaimBatch([], None, OutboxHeld())
    await a.outbox_put(item("r", "payload"), ROOMY)
    (claim,) = (await a.outbox_claim("push", 10, 5)).claims
    assert await a.outbox_retry(claim, 0.3)
    # A retried claim is given up.
    assert not await a.outbox_done(claim, done_ttl_s=5, remember=100)
    batch = await b.outbox_claim("push", 10, 5)
    assert batch.claims == [] and batch.next_due_s is not None and batch.next_due_s <= 0.3
    await asyncio.sleep(0.4)
    (again,) = (await b.outbox_claim("push", 10, 5)).claims
    assert (again.id, again.payload, again.attempt) == ("r", "payload", 2)
    assert await b.outbox_done(again, done_ttl_s=5, remember=100)


async def test_outbox_hands_out_the_earliest_due_first(make: BusFactory) -> None:
    a = await make()
    for n in range(6):
        await a.outbox_put(item(f"e{n}", "p"), ROOMY)
    first = (await a.outbox_claim("push", 3, 5)).claims
    assert [c.id for c in first] == ["e0", "e1", "e2"]
    for claim in first:
        assert await a.outbox_retry(claim, 0)  # due again, but after e3..e5
    await asyncio.sleep(0.01)
    order = [c.id for c in (await a.outbox_claim("push", 10, 5)).claims]
    assert order == ["e3", "e4", "e5", "e0", "e1", "e2"]


# -- bounded transcripts (issue 18) -----------------------------------------------------------


def sized(index: int, nbytes: int) -> TranscriptEntry:
    """A message whose JSON text is exactly `nbytes` bytes (UTF-8: 'é' is two)."""
    head = json.dumps({"index": index, "type": "Text", "text": ""}, separators=(",", ":"))
    filler = nbytes - len(head.encode())
    text = "é" * (filler // 2) + "x" * (filler % 2)
    message = TranscriptEntry(index, {"index": index, "type": "Text", "text": text})
    assert len(message.raw.encode()) == nbytes
    return message


CAPS = TranscriptLimits(max_messages=4, max_bytes=1000, budget_bytes=10_000, ended_retention_s=60)


async def test_a_chat_holds_at_most_its_message_cap_the_oldest_go_first(make: BusFactory) -> None:
    bus = await make(transcripts=CAPS)
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, msgs(1, 2, 3))
    await bus.commit(fence, msgs(4, 5, 6, 7, 8, 9, 10))
    cached = await bus.transcript(chat, 0)
    assert cached.floor == 6
    assert [m.index for m in cached.messages] == [7, 8, 9, 10]
    assert [m.index for m in (await bus.transcript(chat, 8)).messages] == [9, 10]
    assert [m.index for m in await bus.messages(chat, 0)] == [7, 8, 9, 10]
    await bus.commit(fence, msgs(1, 2, 3, 11))  # a replay stores only what is new
    cached = await bus.transcript(chat, 0)
    assert (cached.floor, [m.index for m in cached.messages]) == (7, [8, 9, 10, 11])
    assert (await bus.record(chat)).cursor == 11
    assert await bus.transcript(new_chat(), 0) == CachedMessages(0, [])


async def test_a_chat_holds_at_most_its_byte_cap(make: BusFactory) -> None:
    bus = await make(transcripts=CAPS)
    chat = new_chat()
    fence = await held(bus, chat)
    await bus.commit(fence, [sized(1, 400), sized(2, 400)])
    await bus.commit(fence, [sized(3, 300)])  # 1,100 bytes: the first goes
    cached = await bus.transcript(chat, 0)
    assert (cached.floor, [m.index for m in cached.messages]) == (1, [2, 3])
    assert cached.messages[0] == sized(2, 400)  # bodies intact
    await bus.commit(fence, [sized(4, 1001)])  # larger than the cap alone: not kept at all
    cached = await bus.transcript(chat, 0)
    assert (cached.floor, cached.messages) == (4, [])
    await bus.commit(fence, [sized(5, 200), sized(6, 200)])
    assert [m.index for m in (await bus.transcript(chat, 0)).messages] == [5, 6]


async def test_one_chat_sending_large_messages_stays_within_its_cap(make: BusFactory) -> None:
    """The attacker's view: however many maximal messages one chat commits, what is cached
    of it stays within the byte cap (and every message still reaches the live viewers)."""
    bus = await make(transcripts=CAPS)
    chat = new_chat()
    fence = await held(bus, chat)
    delivered = []
    async with bus.subscribe(chat) as sub:
        for batch in range(20):
            events = await bus.commit(fence, [sized(batch * 5 + k, 990) for k in range(1, 6)])
            assert events is not None and len(events) == 5
            delivered += [e.index for e in await take(sub, 5)]
            cached = await bus.transcript(chat, 0)
            assert sum(len(m.raw.encode()) for m in cached.messages) <= CAPS.max_bytes
            assert len(cached.messages) == 1 and cached.floor == batch * 5 + 4
    assert delivered == list(range(1, 101))


async def test_an_ended_chats_messages_go_after_the_ended_retention(make: BusFactory) -> None:
    bus = await make(transcripts=TranscriptLimits(ended_retention_s=TTL))
    chat, live = new_chat(), new_chat()
    fence, other = await held(bus, chat), await held(bus, live)
    await bus.commit(fence, msgs(1, 2, 3), state=STATE)
    await bus.commit(other, msgs(1, 2))
    await bus.commit(fence, msgs(4), ended=True)
    assert [m.index for m in (await bus.transcript(chat, 0)).messages] == [1, 2, 3, 4]
    await asyncio.sleep(TTL + 0.2)
    assert await bus.transcript(chat, 0) == CachedMessages(4, [])
    assert await bus.messages(chat, 0) == []
    record = await bus.record(chat)  # the record stays: a late reader sees the end
    assert record.ended and record.cursor == 4 and record.state == STATE
    assert [m.index for m in await bus.messages(live, 0)] == [1, 2]  # a live chat keeps all


async def test_over_the_budget_the_least_recently_committed_transcripts_go(
    make: BusFactory,
) -> None:
    caps = TranscriptLimits(max_messages=100, max_bytes=1000, budget_bytes=2000)
    bus = await make(transcripts=caps)
    first, second, third = new_chat(), new_chat(), new_chat()
    fences = {chat: await held(bus, chat) for chat in (first, second, third)}
    await bus.commit(fences[first], [sized(1, 900)])
    await bus.commit(fences[second], [sized(1, 900)])
    await bus.commit(fences[first], [sized(2, 50)])  # `first` is now the more recent
    await bus.commit(fences[third], [sized(1, 900)])  # 2,750 bytes: `second` goes

    async def dropped() -> bool:
        return (await bus.transcript(second, 0)) == CachedMessages(1, [])

    for _ in range(100):  # at once on the memory bus; within a flush on Redis
        if await dropped():
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the least recently committed transcript was not dropped")
    assert [m.index for m in (await bus.transcript(first, 0)).messages] == [1, 2]
    assert [m.index for m in (await bus.transcript(third, 0)).messages] == [1]
    assert (await bus.record(second)).cursor == 1
    # A dropped chat caches what comes after, as before.
    await bus.commit(fences[second], [sized(2, 10 + 90)])
    assert (await bus.transcript(second, 0)).floor == 1
    assert [m.index for m in (await bus.transcript(second, 0)).messages] == [2]
