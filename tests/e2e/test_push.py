"""The push hook end to end: a real chat-bff process, the emulator, and a webhook receiver on
loopback that checks every signature with the `standardwebhooks` library.

An app requests a chat with a pushToken and goes to the background (no reader): each agent
message, and the chat's end, reaches the receiver once, signed, with the chat handle and the
pushToken and nothing of the upstream. While the app reads (an SSE stream) nothing is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.outbox.webhooks import signature
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff, start_emulator
from harness.sse import Viewer
from tests.e2e.push import PUSH_ENV, PUSH_TOKEN, READER_WINDOW_S, request_chat
from tests.webhook_receiver import Delivery, Receiver, new_secret


@pytest.fixture(scope="module")
def quiet_emulator() -> Iterator[ServerProcess]:
    """An upstream whose agents act only when the test says so."""
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def pushing_bff(quiet_emulator: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        quiet_emulator.url,
        BFF_PUSH_WEBHOOK_URL=receiver.url,
        BFF_PUSH_WEBHOOK_SECRET=receiver.secret,
        **PUSH_ENV,
    )
    yield server
    server.stop()


@pytest.fixture
def agent(quiet_emulator: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(quiet_emulator.url)
    yield control
    control.http.close()


def of_chat(deliveries: list[Delivery], handle: str) -> list[Delivery]:
    return [d for d in deliveries if d.json()["data"]["chat"] == handle]


def wait_no_reader() -> None:
    # RequestChat counts as a read: the app is "present" for one reader window after it.
    time.sleep(READER_WINDOW_S + 0.5)


def test_each_agent_message_and_the_end_notified_once_while_nobody_reads(
    pushing_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = request_chat(pushing_bff, agent, pushToken=PUSH_TOKEN)
    wait_no_reader()
    first = agent.agent_say(upstream_id, "Hello, I am looking at your order.")
    second = agent.agent_say(upstream_id, "It left our warehouse today.")
    # The customer's own message is nobody's news.
    httpx.post(
        f"{pushing_bff.url}/api/v2/chats/{handle}",
        json={"operationName": "SendMessage", "text": "thanks!"},
        timeout=10,
    ).raise_for_status()
    agent.http.post(f"/chats/{upstream_id}/disconnect").raise_for_status()
    seen = receiver.wait_for(lambda ds: len(of_chat(ds, handle)) >= 3)
    time.sleep(2.5)  # a few more polls: nothing else may come
    mine = of_chat(receiver.all(), handle)
    assert all(d.verified and d.status == 200 for d in mine)
    # Notices may arrive in any order (they are delivered concurrently and retried apart).
    bodies = sorted(
        (d.json() for d in mine), key=lambda b: b["data"].get("message", {}).get("index", 1e9)
    )
    assert [b["type"] for b in bodies] == ["chat.message", "chat.message", "chat.ended"]
    assert [b["data"]["message"]["index"] for b in bodies[:2]] == [first, second]
    message = bodies[0]["data"]["message"]
    assert message["text"] == "Hello, I am looking at your order."
    assert message["type"] == "Text" and not message["textTruncated"]
    assert message["from"]["type"] == "Agent" and message["from"]["nickname"]
    for body in bodies:
        assert body["data"]["pushToken"] == PUSH_TOKEN
        assert body["data"]["chat"] == handle
        assert body["timestamp"].endswith("Z")
    # Nothing of the upstream: neither its chat id nor the contact-center id.
    raw = b"".join(d.body for d in mine) + json.dumps([d.headers for d in mine]).encode()
    assert upstream_id.encode() not in raw
    assert b"cc-test" not in raw
    assert len({d.msg_id for d in mine}) == 3
    assert seen  # the receiver saw them within its wait


async def test_nothing_is_sent_while_a_reader_is_connected(
    pushing_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = request_chat(pushing_bff, agent, pushToken=PUSH_TOKEN)
    viewer = Viewer([pushing_bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.connects > 0 and v.of("state"))
        # Well past the reader window: the open stream alone keeps the reader present.
        await asyncio.sleep(READER_WINDOW_S * 2)
        seen = await asyncio.to_thread(agent.agent_say, upstream_id, "Are you still there?")
        await viewer.wait_for(lambda v: seen in v.message_indices)
        await asyncio.sleep(2.0)
        assert of_chat(receiver.all(), handle) == []
    finally:
        await viewer.stop()
    # The app went to the background: the next message is pushed.
    await asyncio.sleep(READER_WINDOW_S + 1.0)
    later = await asyncio.to_thread(agent.agent_say, upstream_id, "I will wait for you.")
    deliveries = await asyncio.to_thread(
        receiver.wait_for, lambda ds: len(of_chat(ds, handle)) >= 1
    )
    await asyncio.sleep(1.5)
    mine = of_chat(receiver.all(), handle)
    assert [d.json()["data"]["message"]["index"] for d in mine] == [later]
    assert deliveries


def test_a_chat_without_push_token_is_never_notified(
    pushing_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = request_chat(pushing_bff, agent)
    wait_no_reader()
    agent.agent_say(upstream_id, "Hello?")
    time.sleep(2.5)
    assert of_chat(receiver.all(), handle) == []


def test_a_failed_delivery_is_retried_with_the_same_id(
    pushing_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = request_chat(pushing_bff, agent, pushToken=PUSH_TOKEN)
    wait_no_reader()
    receiver.answers[:] = [500, 503]
    index = agent.agent_say(upstream_id, "Your refund is on its way.")
    receiver.wait_for(lambda ds: any(d.status == 200 for d in of_chat(ds, handle)))
    time.sleep(1.5)
    mine = of_chat(receiver.all(), handle)
    assert [d.status for d in mine] == [500, 503, 200]
    assert len({d.msg_id for d in mine}) == 1  # one notice, three attempts
    assert all(d.verified for d in mine)
    assert mine[-1].json()["data"]["message"]["index"] == index
    # Each attempt is signed afresh: its own timestamp, the same body.
    assert len({d.body for d in mine}) == 1


@pytest.mark.parametrize(
    "token",
    ["", "with space", "tab\there", "é-not-ascii", "x" * 1025, 42, ["list"]],
)
def test_a_bad_push_token_is_refused_before_anything_reaches_the_upstream(
    pushing_bff: ServerProcess, agent: EmulatorControl, token: object
) -> None:
    before = agent.count("POST")
    answer = httpx.post(
        pushing_bff.url + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": "N", "subject": "S", "pushToken": token},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["statusCode"] == 10
    assert "pushToken" in answer.json()["statusMessage"]
    assert agent.count("POST") == before


def test_signatures_verify_with_a_library_we_did_not_write_and_tampering_fails(
    pushing_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = request_chat(pushing_bff, agent, pushToken=PUSH_TOKEN)
    wait_no_reader()
    agent.agent_say(upstream_id, "Signed and sealed.")
    delivery = receiver.wait_for(lambda ds: bool(of_chat(ds, handle)))
    sent = of_chat(delivery, handle)[0]
    hook = Webhook(receiver.secret)
    assert hook.verify(sent.body, sent.headers)["data"]["chat"] == handle
    tampered = sent.body.replace(b"Signed", b"Signee")
    with pytest.raises(WebhookVerificationError):
        hook.verify(tampered, sent.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(sent.body, sent.headers)
    stale = {**sent.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        hook.verify(sent.body, stale)  # a replay of an old capture is refused
    # Our signer and the library's agree on the same input.
    key = base64.b64decode(receiver.secret.removeprefix("whsec_"))
    ours = signature(key, sent.msg_id, int(sent.headers["webhook-timestamp"]), sent.body)
    assert ours in sent.headers["webhook-signature"].split(" ")
