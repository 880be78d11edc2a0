"""The upstream's own words about its health reach clients in our terms: a 503 asking for a
pause passes its Retry-After on, and a stream of a chat the upstream no longer knows ends with
an `end` event instead of an error after the stream began."""

from __future__ import annotations

import httpx

from app.core.handles import HandleCodec
from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.servers import SECRET_KEY, ServerProcess
from harness.sse import Viewer


def test_an_upstream_503_with_a_json_body_keeps_its_retry_after(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    control.faults(error_status=503, error_body_kind="json", retry_after_s=30, routes="write")
    for answer in (
        client.post(f"/api/v2/chats/{handle}", json={"operationName": "SendMessage", "text": "x"}),
        client.post(
            "/api/v2/chats",
            json={"operationName": "RequestChat", "nickname": "a", "subject": "b"},
        ),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "30"
        assert answer.json()["statusCode"] == 12


async def test_a_stream_of_a_chat_the_upstream_does_not_know_ends(bff: ServerProcess) -> None:
    handle = HandleCodec([SECRET_KEY.encode()]).seal("no-such-chat-upstream-7f1c")
    logged = len(bff.logs())
    viewer = Viewer([bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.ended.is_set(), timeout_s=20)
    finally:
        await viewer.stop()
    assert viewer.of("end"), viewer.events
    assert viewer.events[0].event == "state"
    assert viewer.events[0].data["state"] == "Idle"
    tail = bff.logs()[logged:]
    assert "Traceback" not in tail
    assert "response already started" not in tail
