"""Hypothesis over the upstream side: the hostile double answers chat, message and send
requests with arbitrary JSON (any types, depths, unicode including lone surrogates, huge
numbers, NaN, sizes) or arbitrary bytes, under any status. Whatever it sends, chat-bff's
clients get documented answers or clean events, never a 500 or a stream that dies without
`end`, and the chat's poller goes on once the upstream behaves again."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.upstream.transcript import MAX_INDEX
from harness.servers import ServerProcess, start_bff
from tests.fuzz.front import FAST_POLLS, new_chat
from tests.fuzz.hostile import HostileUpstream, Raw

ANSWERS = {200, 400, 404, 409, 502, 503, 504}
EVENTS = {"state", "message", "status", "end"}
EXAMPLES = int(os.environ.get("FUZZ_UPSTREAM_EXAMPLES", "20"))

TEXT = st.text(
    alphabet=st.characters(exclude_categories=())
    | st.sampled_from(["\ud800", "\udfff", "\ud83d", "\x00", "\n", '"', "\\"]),
    max_size=40,
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats()
    | TEXT
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)
PARTY = st.fixed_dictionaries(
    {},
    optional={
        "nickname": JSON_VALUES,
        "participantId": JSON_VALUES,
        "type": st.sampled_from(["Agent", "Customer", "External"]) | JSON_VALUES,
    },
)
MESSAGE = st.fixed_dictionaries(
    {
        "index": st.integers(min_value=1, max_value=50)
        | st.integers(min_value=1, max_value=MAX_INDEX - 1)
        | JSON_VALUES,
        "type": st.sampled_from(["Text", "ParticipantJoined", "Notice", "Odd"]) | JSON_VALUES,
    },
    optional={"text": JSON_VALUES, "from": PARTY | JSON_VALUES, "utcTime": JSON_VALUES},
)
CHAT = st.fixed_dictionaries(
    {"state": st.sampled_from(["WaitingForAgent", "Chatting", "Idle"]) | JSON_VALUES},
    optional={
        "capabilities": st.lists(JSON_VALUES, max_size=5) | JSON_VALUES,
        "participants": st.lists(PARTY, max_size=4) | JSON_VALUES,
    },
)


def _envelope(key: str, inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the documented envelope with arbitrary contents, sometimes anything at all."""
    return st.one_of(
        st.builds(lambda v, code: {"statusCode": code, key: v}, inner, st.just(0)),
        st.builds(
            lambda v, code, msg: {"statusCode": code, "statusMessage": msg, key: v},
            inner,
            st.integers(min_value=-3, max_value=30) | JSON_VALUES,
            TEXT,
        ),
        JSON_VALUES,
    )


@pytest.fixture(scope="module")
def hostile_bff(hostile: HostileUpstream) -> Iterator[ServerProcess]:
    # A short upstream timeout: a reader of a chat whose poller never committed waits for
    # it (cold wait = timeout + 2 s) before its 503.
    server = start_bff(hostile.url, **{**FAST_POLLS, "BFF_UPSTREAM_TIMEOUT_S": "1"})
    yield server
    server.stop()


def _body(value: Any) -> bytes:
    # Python's own JSON spelling: surrogates as \u escapes, NaN and Infinity as bare words,
    # which many servers emit and a strict parser would refuse.
    return json.dumps(value, allow_nan=True).encode()


# Bodies too big to show in a failure report, named instead of generated.
BIG = {
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "long": b'{"statusCode":0,"messages":[{"index":1,"type":"Text","text":"'
    + b"x" * 2_000_000
    + b'"}]}',
}
ANSWER = st.tuples(
    st.sampled_from([200, 200, 200, 400, 404, 429, 500, 503]),
    st.one_of(st.just(None), st.binary(max_size=64), st.sampled_from(sorted(BIG))),
    st.sampled_from([b"", b"7", b"soon", b"\xff"]),
)


def _raw(answer: tuple[int, bytes | str | None, bytes], payload: Any) -> Raw:
    status, raw, retry_after = answer
    headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", b"application/json"),)
    if retry_after:
        headers += ((b"Retry-After", retry_after),)
    if isinstance(raw, str):
        return Raw(status, BIG[raw], headers)
    return Raw(status, _body(payload) if raw is None else raw, headers)


def _documented(answer: httpx.Response) -> None:
    assert answer.status_code in ANSWERS, (answer.status_code, answer.text[:300])
    if answer.status_code != 200:
        assert set(answer.json()) == {"statusCode", "statusMessage"}


def _stream(bff: ServerProcess, handle: str) -> list[tuple[str, Any]]:
    """The stream's events for about a second; it must stay open or end with `end`."""
    events: list[tuple[str, Any]] = []
    timeout = httpx.Timeout(5, read=1.0)
    try:
        with httpx.stream("GET", f"{bff.url}/api/v2/chats/{handle}/events", timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                _documented(r)
                return events
            kind = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    assert kind in EVENTS, kind
                    events.append((kind, json.loads(line.partition(":")[2])))
            # The server closed the stream: only ever after `end`.
            assert events and events[-1][0] == "end", events
    except httpx.ReadTimeout:
        pass  # still open: alive
    return events


@pytest.mark.timeout(600)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    messages=st.tuples(ANSWER, _envelope("messages", st.lists(MESSAGE, max_size=4) | JSON_VALUES)),
    chat=st.tuples(ANSWER, _envelope("chat", CHAT | JSON_VALUES)),
    sent=st.tuples(ANSWER, JSON_VALUES | st.just({"statusCode": 0})),
)
def test_whatever_the_upstream_answers_clients_get_documented_answers(
    hostile_bff: ServerProcess,
    hostile: HostileUpstream,
    messages: tuple[Any, Any],
    chat: tuple[Any, Any],
    sent: tuple[Any, Any],
) -> None:
    started = time.monotonic()
    hostile.clear()
    handle, chat_id = new_chat(hostile_bff, hostile)
    hostile.set("messages", _raw(*messages))
    hostile.set("chat", _raw(*chat))
    hostile.set("send", _raw(*sent))
    url = f"{hostile_bff.url}/api/v2/chats/{handle}"
    # A reader, a long-poll, a sender and a stream at once, as a chat's clients would be.
    with ThreadPoolExecutor(4) as pool:
        reads = [
            pool.submit(httpx.get, url, timeout=15),
            pool.submit(httpx.get, url + "/messages", params={"index": 1, "wait": 1}, timeout=15),
            pool.submit(
                httpx.post, url, json={"operationName": "SendMessage", "text": "hi"}, timeout=15
            ),
        ]
        streamed = pool.submit(_stream, hostile_bff, handle)
        for read in reads:
            _documented(read.result())
        events = streamed.result()
    ended = any(kind == "end" for kind, _ in events)

    # The upstream behaves again: the poller is still there and delivers.
    hostile.clear()
    if ended:
        return
    # Past any index the fuzzed transcripts can have committed.
    index = hostile.say(chat_id, "still here", index=MAX_INDEX)
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(url + "/messages", params={"index": index, "wait": 2}, timeout=15)
        _documented(answer)
        if answer.status_code == 200 and any(
            m.get("text") == "still here" for m in answer.json()["messages"]
        ):
            break
        state = httpx.get(url, timeout=15)
        if state.status_code == 200 and state.json()["chat"]["state"] == "Idle":
            return  # the fuzzed answers ended the chat
        assert time.monotonic() < deadline, "the poller did not recover"
    assert time.monotonic() - started < 30


def test_no_traceback_after_the_fuzzing(hostile_bff: ServerProcess) -> None:
    logs = hostile_bff.logs()
    assert "Traceback" not in logs
    assert "unhandled error" not in logs
