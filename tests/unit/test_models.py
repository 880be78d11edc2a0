"""Messages kept as JSON text: what a cache stores and an answer carries is exactly the
normalised entry, whatever the upstream put in it; and a cached transcript is strings, not
dicts, so thousands of chats' messages cost young-generation collections nothing."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.bus import MemoryBus, TranscriptLimits
from app.events import ChatEvent, EventKind
from app.models import TranscriptEntry, encode
from app.upstream.transcript import normalise_message

AGENT = {"nickname": "Kristi", "participantId": "2", "type": "Agent"}


@pytest.mark.parametrize(
    "body",
    [
        {"index": 1, "type": "Text", "text": "plain"},
        {"index": 2, "type": "Text", "text": "héllo ✓ 你好 🙂", "from": AGENT},
        {"index": 3, "type": "Text", "text": 'quotes " and \\ and \n newlines'},
        {"index": 4, "type": "Custom", "n": 2**70, "f": 0.1 + 0.2, "nested": [{"a": None}]},
        {"index": 5, "type": "Text", "text": "</script><script>alert(1)</script>"},
    ],
)
def test_text_and_body_are_the_same_entry(body: dict[str, Any]) -> None:
    encoded = TranscriptEntry(body["index"], body).raw
    assert json.loads(encoded) == body
    assert TranscriptEntry(body["index"], raw=encoded).body == body
    assert TranscriptEntry(body["index"], raw=encoded) == TranscriptEntry(body["index"], body)
    assert "\n" not in encoded  # one SSE data line


def test_equality_is_by_index_and_entry() -> None:
    a = TranscriptEntry(1, {"index": 1, "text": "a"})
    assert a != TranscriptEntry(2, {"index": 2, "text": "a"})
    assert a != TranscriptEntry(1, {"index": 1, "text": "b"})
    assert a == TranscriptEntry(1, raw='{"text": "a", "index": 1}')  # key order, spacing
    assert hash(a) == hash(TranscriptEntry(1, raw=a.raw))


def test_a_message_needs_its_body_or_text() -> None:
    with pytest.raises(ValueError, match="needs its body"):
        TranscriptEntry(1)


# What an upstream can put in a message: any JSON (the sanitiser has cleaned its strings).
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), values, max_size=6), st.text())
def test_any_upstream_entry_survives_the_cache_unchanged(extra: dict[str, Any], text: str) -> None:
    message = normalise_message({**extra, "index": 7, "type": "Text", "text": text})
    again = TranscriptEntry(7, raw=message.raw)
    assert again.body == message.body
    assert json.loads(message.raw) == message.body
    assert message.raw == encode(message.body)


async def test_a_cached_transcript_is_text_the_collector_never_scans() -> None:
    count = 2000
    # Room for all of them (the shipped per-chat cap is 500 messages).
    bus = MemoryBus(transcripts=TranscriptLimits(max_messages=count, max_bytes=1 << 20))
    fence = await bus.acquire("chat-gc", 30)
    assert fence is not None
    gc.collect()
    before = len(gc.get_objects())
    batch = [
        TranscriptEntry(i, {"index": i, "type": "Text", "text": f"m{i}", "from": dict(AGENT)})
        for i in range(1, count + 1)
    ]
    events = await bus.commit(fence, batch)
    assert events is not None and len(events) == count
    del batch, events
    gc.collect()
    grown = len(gc.get_objects()) - before
    # Dicts per message would be at least 2,000 (4,000 with the sender); strings are untracked.
    assert grown < count / 10, f"{grown} objects tracked by the collector for {count} messages"
    cached = await bus.messages("chat-gc", after=0, limit=count)
    assert [m.index for m in cached] == list(range(1, count + 1))
    assert cached[41].body["text"] == "m42"
    await bus.aclose()


def test_a_message_event_carries_its_text() -> None:
    message = TranscriptEntry(3, {"index": 3, "type": "Text", "text": "hi"})
    event = ChatEvent(EventKind.MESSAGE, message.body, index=3, prev=2, raw=message.raw)
    assert event.message == message
    assert event.message.raw == message.raw
