"""Injected faults: each kind, route filters, `remaining`, Python and HTTP switching."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

import httpx
import pytest

from app.emulator import DroppedConnection, Faults

from .inprocess import Harness


async def test_latency_delays_every_request(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(latency_ms=80))
    started = time.monotonic()
    chat = await harness.chat(chat_id)
    assert time.monotonic() - started >= 0.075
    assert chat["id"] == chat_id


async def test_outage_is_a_503_html_page_with_retry_after(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(outage=True, retry_after_s=7))
    response = await harness.client.get(f"/api/v2/chats/{chat_id}")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "7"
    assert "<html>" in response.text


async def test_outage_without_retry_after(harness: Harness) -> None:
    harness.emulator.set_faults(Faults(outage=True))
    response = await harness.client.get("/api/v2/chats/x")
    assert response.status_code == 503
    assert "retry-after" not in response.headers


async def test_a_json_error_carries_the_status_code_asked_for(harness: Harness) -> None:
    harness.emulator.set_faults(Faults(error_status=400, error_code=2))
    response = await harness.client.get("/api/v2/chats/x")
    assert (response.status_code, response.json()["statusCode"]) == (400, 2)
    assert (
        await harness.client.put("/_emulator/faults", json={"error_code": -1})
    ).status_code == 422


@pytest.mark.parametrize(
    ("kind", "content_type", "body_start"),
    [
        ("json", "application/json", b'{"statusCode":4'),
        ("text", "text/plain", b"Internal error"),
        ("html", "text/html", b"<html>"),
        ("garbage", "application/json", b"\x00"),
        ("empty", None, b""),
    ],
)
async def test_error_status_with_each_body_kind(
    harness: Harness, kind: str, content_type: str | None, body_start: bytes
) -> None:
    harness.emulator.set_faults(Faults(error_status=502, error_body_kind=kind, retry_after_s=2))
    response = await harness.client.get("/api/v2/chats/x")
    assert response.status_code == 502
    assert response.headers["retry-after"] == "2"
    if content_type is None:
        assert "content-type" not in response.headers
    else:
        assert response.headers["content-type"].startswith(content_type)
    assert response.content.startswith(body_start)
    if kind == "json":
        assert response.json() == {"statusCode": 4, "statusMessage": "Internal error"}
    elif kind == "garbage":
        with pytest.raises(ValueError, match=r"."):
            response.json()
    elif kind == "empty":
        assert response.content == b""


@pytest.mark.parametrize(
    ("routes", "get_faulted", "post_faulted"),
    [("all", True, True), ("read", True, False), ("write", False, True)],
)
async def test_route_filter(
    harness: Harness, routes: str, get_faulted: bool, post_faulted: bool
) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(error_status=500, routes=routes))
    get = await harness.client.get(f"/api/v2/chats/{chat_id}/messages?index=1")
    post = await harness.op(chat_id, "SendStartTypingNotification")
    assert (get.status_code == 500) is get_faulted
    assert (post.status_code == 500) is post_faulted


async def test_remaining_applies_to_that_many_requests_then_clears(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(error_status=500, remaining=2, routes="read"))
    # POSTs do not match the filter, so they do not use up `remaining`.
    assert (await harness.op(chat_id, "SendStartTypingNotification")).status_code == 200
    statuses = [
        (await harness.client.get(f"/api/v2/chats/{chat_id}")).status_code for _ in range(3)
    ]
    assert statuses == [500, 500, 200]
    assert harness.emulator.faults == Faults()


async def test_hang_never_answers_until_the_client_gives_up(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(hang=True, remaining=1))
    before = harness.emulator.request_count
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(harness.client.get(f"/api/v2/chats/{chat_id}"), 0.2)
    assert harness.emulator.request_count == before + 1
    # The next request is served again (remaining=1).
    assert (await harness.client.get(f"/api/v2/chats/{chat_id}")).status_code == 200


async def test_hanging_requests_are_released_by_aclose(harness: Harness) -> None:
    harness.emulator.set_faults(Faults(hang=True))
    pending = asyncio.create_task(harness.client.get("/api/v2/chats/x"))
    await asyncio.sleep(0.05)
    assert not pending.done()
    await harness.emulator.aclose()
    response = await asyncio.wait_for(pending, 1)
    assert response.status_code == 503


async def test_drop_connection_is_a_transport_error(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    harness.emulator.set_faults(Faults(drop_connection=True, remaining=1))
    with pytest.raises(httpx.TransportError):
        await harness.client.get(f"/api/v2/chats/{chat_id}")
    assert issubclass(DroppedConnection, httpx.RemoteProtocolError)
    assert (await harness.client.get(f"/api/v2/chats/{chat_id}")).status_code == 200


async def test_faulted_requests_are_counted_and_logged(harness: Harness) -> None:
    harness.emulator.set_faults(Faults(outage=True))
    for _ in range(3):
        await harness.client.get("/api/v2/chats/abc")
    assert harness.emulator.request_count == 3
    assert [r.chat_id for r in harness.emulator.requests()] == ["abc"] * 3


async def test_faults_come_before_header_checks(harness: Harness) -> None:
    harness.emulator.set_faults(Faults(error_status=504, error_body_kind="empty"))
    client = harness.new_client(headers={})
    assert (await client.get("/api/v2/chats/x")).status_code == 504


async def test_faults_over_http(harness: Harness) -> None:
    client = harness.client
    response = await client.put(
        "/_emulator/faults", json={"error_status": 500, "error_body_kind": "text", "remaining": 1}
    )
    assert response.status_code == 200
    assert response.json()["error_status"] == 500
    assert harness.emulator.faults.error_body_kind == "text"
    assert (await client.get("/_emulator/faults")).json() == asdict(harness.emulator.faults)
    # The control API itself is never faulted nor counted.
    assert (await client.get("/_emulator/stats")).status_code == 200
    assert (await client.get("/api/v2/chats/x")).status_code == 500
    assert (await client.get("/api/v2/chats/x")).status_code == 400

    await client.put("/_emulator/faults", json={"outage": True})
    assert harness.emulator.faults.outage
    response = await client.delete("/_emulator/faults")
    assert response.json() == asdict(Faults())
    assert harness.emulator.faults == Faults()


@pytest.mark.parametrize(
    "body",
    [
        {"error_body_kind": "xml"},
        {"routes": "some"},
        {"error_status": 42},
        {"latency_ms": -1},
        {"unknown_field": True},
    ],
)
async def test_invalid_faults_are_rejected_over_http(
    harness: Harness, body: dict[str, object]
) -> None:
    response = await harness.client.put("/_emulator/faults", json=body)
    assert response.status_code == 422
    assert harness.emulator.faults == Faults()


@pytest.mark.parametrize(
    "kwargs",
    [{"error_body_kind": "xml"}, {"routes": "some"}, {"error_status": 42}, {"remaining": -1}],
)
def test_invalid_faults_are_rejected_in_python(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        Faults(**kwargs)  # type: ignore[arg-type]
