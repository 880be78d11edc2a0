"""The cached transcript is bounded, and reading it stays whole and exactly once.

A customer sends many maximal messages into one chat (the attacker's view): with the shipped
caps (`BFF_TRANSCRIPT_MAX_BYTES` 256 KiB, 500 messages), what chat-bff caches of the chat stays
within them, on the in-memory bus (`bff_transcript_bytes`) and on Redis (the chat's log key,
read in Redis itself). Readers are not short-changed: `GET messages?index=1` and an SSE
stream from the start, or resumed from an index below what is cached, get the upstream's
whole transcript, each message once and in order; what the cache dropped comes from the
upstream with an explicit index. An ended chat's messages leave the cache after
`BFF_ENDED_RETENTION_S` (1 s here), while its state still says it ended.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis

from harness.chats import post, start_chat, wait_for
from harness.emulator import EmulatorControl
from harness.redis import REDIS_URL
from harness.servers import CONTACT_CENTER_ID, ServerProcess, start_bff
from tests.components import missing_component
from tests.e2e.background import upstream_id_of

MAX_BYTES = 256 * 1024  # the shipped BFF_TRANSCRIPT_MAX_BYTES
SENDS = 80
TEXT = 4000  # the longest text a customer may send
ENDED_RETENTION_S = 1.0


@pytest.fixture(params=["memory", "redis"])
def bounded_bff(request: pytest.FixtureRequest, emulator: ServerProcess) -> Iterator[Any]:
    extra = {
        "BFF_SEND_BURST": "1000",
        "BFF_SEND_PER_MINUTE": "60000",
        "BFF_ENDED_RETENTION_S": str(ENDED_RETENTION_S),
    }
    prefix = f"test-{secrets.token_hex(6)}"
    redis: Redis | None = None
    if request.param == "redis":
        redis = Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
        try:
            redis.ping()
        except Exception as exc:
            missing_component(f"Redis at {REDIS_URL} does not answer: {exc}")
        extra.update(BFF_REDIS_URL=REDIS_URL, BFF_REDIS_PREFIX=prefix)
    server = start_bff(emulator.url, **extra)
    yield server, redis, prefix
    server.stop()
    if redis is not None:
        for key in redis.scan_iter(match=f"{prefix}:*", count=500):
            redis.unlink(key)
        redis.close()


def metric(server: ServerProcess, series: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert found, series
    return float(found.group(1))


def upstream_transcript(emulator: ServerProcess, upstream_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{emulator.url}/api/v2/chats/{upstream_id}/messages",
        params={"index": 1},
        headers={"ContactCenterId": CONTACT_CENTER_ID},
        timeout=10,
    )
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def streamed(server: ServerProcess, handle: str, after: int, until: int) -> list[int]:
    """The message ids an SSE stream resumed after `after` delivers, up to `until`."""
    ids: list[int] = []
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
    url = f"{server.url}/api/v2/chats/{handle}/events"
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=15)) as answer:
        assert answer.status_code == 200
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if fields.get("event") == "message":
                ids.append(int(fields["id"]))
                assert json.loads(fields["data"])["index"] == ids[-1]
                if ids[-1] >= until:
                    return ids
            fields = {}
    raise AssertionError(f"the stream ended at {ids[-1:]}")


def test_one_chat_sending_large_messages_cannot_grow_its_cached_transcript(
    bounded_bff: Any, emulator: ServerProcess
) -> None:
    server, redis, prefix = bounded_bff
    control = EmulatorControl(emulator.url)
    nickname = f"Flood-{secrets.token_hex(3)}"
    with httpx.Client(base_url=server.url, timeout=15) as client:
        handle = start_chat(client, nickname)
        for n in range(SENDS):
            text = f"{n:04d}" + "x" * (TEXT - 4)
            assert post(client, handle, "SendMessage", text=text).status_code == 200
        upstream_id = upstream_id_of(control, nickname)
        control.http.close()

        def everything() -> list[dict[str, Any]] | None:
            whole = upstream_transcript(emulator, upstream_id)
            mine = [m for m in whole if m.get("text", "").endswith("x" * 100)]
            return whole if len(mine) == SENDS else None

        whole = wait_for(everything, timeout_s=30, what="every message upstream")
        indices = [m["index"] for m in whole]

        def cached_up_to_the_last() -> bool:
            # Above the floor: served by the cache alone, no upstream read.
            answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": indices[-1]})
            return bool(answer.json()["messages"])

        wait_for(cached_up_to_the_last, timeout_s=20, what="chat-bff to poll every message")
        # Whole, once, in order: the cache's part and the upstream's for what it dropped.
        answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
        assert answer.status_code == 200, answer.text
        got: list[dict[str, Any]] = answer.json()["messages"]
        assert [m["index"] for m in got] == sorted({m["index"] for m in got})
        assert [m.get("text") for m in got[: len(whole)]] == [m.get("text") for m in whole]

    last = indices[-1]
    assert streamed(server, handle, 0, last) == indices
    assert streamed(server, handle, indices[5], last) == indices[6:]
    assert metric(server, "bff_history_reads_total") >= 2
    # Each read below the cache costs an upstream read: limited per client.
    path = f"/api/v2/chats/{handle}/messages"
    with httpx.Client(base_url=server.url, timeout=15) as client:
        answers = [client.get(path, params={"index": 1}) for _ in range(12)]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused and int(refused[0].headers["Retry-After"]) >= 1
    assert metric(server, 'bff_transcript_evicted_messages_total{reason="chat_cap"}') > 0

    held = metric(server, "bff_transcript_bytes")
    assert 0 < held <= MAX_BYTES
    if redis is not None:
        (log_key,) = list(redis.scan_iter(match=f"{prefix}:{{*}}:log", count=1000))
        members = redis.zrange(log_key, 0, -1)
        held_in_redis = sum(len(m.partition(":")[2].encode()) for m in members)
        assert 0 < held_in_redis <= MAX_BYTES
        # samples=0: every member counted; Redis's default estimate from 5 of them varies with
        # which it picks when message sizes differ.
        assert redis.memory_usage(log_key, samples=0) < 2 * MAX_BYTES


def test_an_ended_chats_transcript_leaves_the_cache_after_the_ended_retention(
    bounded_bff: Any,
) -> None:
    server, redis, prefix = bounded_bff
    with httpx.Client(base_url=server.url, timeout=15) as client:
        handle = start_chat(client, "Private")
        assert post(client, handle, "SendMessage", text="my address is ...").status_code == 200
        wait_for(lambda: metric(server, "bff_transcript_bytes") > 0, what="a cached message")
        assert post(client, handle, "Complete").status_code == 200

        def ended() -> bool:
            state: str = client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"]
            return state == "Idle"

        wait_for(ended, what="the end")
        # Held until the retention passes, then dropped (a Redis key expiring by itself).
        if redis is None:
            wait_for(lambda: metric(server, "bff_transcript_bytes") == 0, what="the drop")
        else:
            wait_for(
                lambda: not list(redis.scan_iter(match=f"{prefix}:{{*}}:log", count=1000)),
                what="the log key to expire",
            )
        assert ended(), "the state stays: a late reader still sees the end"
        answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
        assert answer.status_code == 200  # from the upstream, if it still has them
