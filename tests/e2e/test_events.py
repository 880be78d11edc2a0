"""The SSE stream and the cached reads of one instance (in-memory bus), through real servers."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.core.handles import HandleCodec
from harness.chats import post, start_chat
from harness.emulator import EmulatorControl, create_upstream_chat
from harness.servers import SECRET_KEY, ServerProcess
from harness.sse import Viewer


def upstream_id_of(control: EmulatorControl) -> str:
    return next(str(r["chat_id"]) for r in reversed(control.requests()) if r.get("chat_id"))


async def test_stream_state_then_transcript_then_live(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    viewer = Viewer([bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.events)
        first = viewer.events[0]
        assert first.event == "state"
        assert first.data["id"] == handle
        assert first.data["state"] in ("WaitingForAgent", "Chatting")
        assert viewer.retry_ms is not None and viewer.retry_ms >= 2000
        await viewer.wait_for(lambda v: any(e.data.get("type") == "Text" for e in v.of("message")))
        assert (
            post(client, handle, "SendMessage", text="hello from the customer").status_code == 200
        )
        await viewer.wait_for(
            lambda v: any(e.data.get("text") == "hello from the customer" for e in v.of("message"))
        )
        await viewer.wait_for(
            lambda v: any(
                e.data.get("type") == "Text" and e.data["from"]["type"] == "Agent"
                for e in v.of("message")[-3:]
            )
        )
        assert post(client, handle, "Complete").status_code == 200
        await asyncio.wait_for(viewer.ended.wait(), 10)
    finally:
        await viewer.stop()
    indices = viewer.message_indices
    assert indices == sorted(set(indices))
    full = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()["messages"]
    assert indices == [m["index"] for m in full]
    assert viewer.events[-1].event == "end"
    # The ended chat's stream answers state, the transcript and end again, then closes.
    again = Viewer([bff.url], handle).start()
    try:
        await asyncio.wait_for(again.ended.wait(), 10)
    finally:
        await again.stop()
    assert again.events[0].event == "state"
    assert again.events[0].data["state"] == "Idle"
    assert again.message_indices == indices


async def test_resume_after_last_event_id(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    for n in range(4):
        control.agent_say(upstream_id, f"line {n}")
    full: list[int] = []

    def have_all() -> bool:
        full[:] = [
            m["index"]
            for m in client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()[
                "messages"
            ]
        ]
        return len(full) >= 5

    deadline = time.monotonic() + 10
    while not have_all():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    cut = full[2]
    by_header = Viewer([bff.url], handle, last_event_id=str(cut)).start()
    try:
        await by_header.wait_for(lambda v: v.message_indices[-1:] == full[-1:])
    finally:
        await by_header.stop()
    assert by_header.events[0].event == "state"
    assert by_header.message_indices[: len(full) - 3] == full[3:]
    async with (
        httpx.AsyncClient(base_url=bff.url, timeout=10) as http,
        http.stream(
            "GET", f"/api/v2/chats/{handle}/events", params={"lastEventId": str(full[-2])}
        ) as response,
    ):
        ids: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                ids.append(line.split(":", 1)[1].strip())
                if ids[-1] == str(full[-1]):
                    break
    assert ids == [str(full[-1])]


async def test_stream_headers_and_heartbeat(bff: ServerProcess, client: httpx.Client) -> None:
    handle = start_chat(client)
    async with (
        httpx.AsyncClient(base_url=bff.url, timeout=10) as http,
        http.stream(
            "GET", f"/api/v2/chats/{handle}/events", headers={"Accept-Encoding": "gzip, br"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in response.headers["cache-control"]
        assert "no-transform" in response.headers["cache-control"]
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in response.headers


async def test_long_poll_returns_on_new_message_or_after_wait(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    base = f"/api/v2/chats/{handle}/messages"
    async with httpx.AsyncClient(base_url=bff.url, timeout=20) as http:
        current = (await http.get(base, params={"index": 1})).json()["messages"]
        nxt = current[-1]["index"] + 1 if current else 1
        started = time.monotonic()
        empty = await http.get(base, params={"index": 10_000, "wait": 1})
        assert empty.json()["messages"] == []
        assert 0.9 <= time.monotonic() - started < 5

        async def say_later() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(control.agent_say, upstream_id, "long-poll wake-up")

        speaker = asyncio.create_task(say_later())
        started = time.monotonic()
        answer = await http.get(base, params={"index": nxt, "wait": 15})
        waited = time.monotonic() - started
        await speaker
        assert waited < 10, "the long-poll did not return when a message arrived"
        messages = answer.json()["messages"]
        assert messages
        assert all(m["index"] >= nxt for m in messages)
        bad = await http.get(base, params={"index": 1, "wait": 31})
        assert bad.status_code == 400
        assert (await http.get(base, params={"wait": 5})).status_code == 400


async def test_cold_cache_is_filled_by_one_upstream_read(
    bff: ServerProcess, emulator: ServerProcess, control: EmulatorControl
) -> None:
    upstream_id = create_upstream_chat(emulator)
    handle = HandleCodec([SECRET_KEY.encode()]).seal(upstream_id)
    before = control.requests()
    async with httpx.AsyncClient(base_url=bff.url, timeout=20) as http:
        answers = await asyncio.gather(
            *[http.get(f"/api/v2/chats/{handle}") for _ in range(15)],
            *[http.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}) for _ in range(15)],
        )
    assert all(a.status_code == 200 for a in answers)
    seq = max((int(str(r["seq"])) for r in before), default=0)
    calls = [
        r for r in control.requests() if int(str(r["seq"])) > seq and r["chat_id"] == upstream_id
    ]
    reads = [r for r in calls if r["method"] == "GET"]
    # One poll (messages) plus its one chat read: not one upstream call per reader.
    assert len(reads) <= 3, [r["path"] for r in reads]


async def test_bad_last_event_id_and_unknown_handle(
    bff: ServerProcess, client: httpx.Client
) -> None:
    handle = start_chat(client)
    answer = client.get(f"/api/v2/chats/{handle}/events", headers={"Last-Event-ID": "abc"})
    assert answer.status_code == 400
    assert client.get("/api/v2/chats/nope/events").status_code == 404
