"""What a broken upstream sends cannot hurt chat-bff: text that cannot be encoded, answers
nested too deep, cookies with control characters, bodies too large. Each case answered by
the hostile upstream double; readers get clean answers, sends documented errors, and the
chat's poller keeps going once the upstream behaves again."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from harness.chats import wait_for
from harness.servers import ServerProcess
from harness.sse import Viewer
from tests.fuzz.front import new_chat
from tests.fuzz.hostile import HostileUpstream, Raw

DOCUMENTED = {400, 404, 409, 413, 415, 429, 502, 503, 504}


def messages_answer(*bodies: str) -> Raw:
    """A GetMessages answer whose entries are given as JSON text (escapes kept as written)."""
    return Raw.json_text('{"statusCode":0,"messages":[' + ",".join(bodies) + "]}")


def send(bff: ServerProcess, handle: str, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{bff.url}/api/v2/chats/{handle}",
        json={"operationName": "SendMessage", "text": text},
        timeout=10,
    )


def assert_error_shape(answer: httpx.Response) -> None:
    assert answer.status_code in DOCUMENTED, (answer.status_code, answer.text)
    assert set(answer.json()) == {"statusCode", "statusMessage"}


async def test_lone_surrogates_never_break_reads_or_streams(
    hostile_bff: ServerProcess, fresh: HostileUpstream
) -> None:
    # The answers are set before the chat exists: its first poll (at RequestChat) must read
    # them, and a state read once is not read again while the chat talks.
    fresh.set(
        "messages",
        messages_answer(
            '{"index":1,"type":"Text","text":"a\\ud800b",'
            '"from":{"nickname":"K\\udfff","participantId":2,"type":"Agent"},"\\udbff":1}'
        ),
    )
    fresh.set(
        "chat",
        Raw.json_text(
            '{"statusCode":0,"chat":{"state":"Chatting\\ud800","capabilities":["\\udc00"],'
            '"participants":[{"nickname":"\\ud83d","participantId":"1","type":"Customer"}]}}'
        ),
    )
    handle, _ = new_chat(hostile_bff, fresh)
    url = f"{hostile_bff.url}/api/v2/chats/{handle}"

    def first_message() -> httpx.Response | None:
        answer = httpx.get(url + "/messages", params={"index": 1}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer if answer.json()["messages"] else None

    answer = wait_for(first_message, what="the message with a lone surrogate")
    message = answer.json()["messages"][0]
    assert message["text"] == "a\ufffdb"
    assert message["from"]["nickname"] == "K\ufffd"
    chat = httpx.get(url, timeout=10)
    assert chat.status_code == 200, chat.text
    assert chat.json()["chat"]["state"] == "Chatting\ufffd"

    viewer = Viewer([hostile_bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.message_indices == [1])
        assert viewer.of("message")[0].data["text"] == "a\ufffdb"
        # The stream lives on: the next message arrives on the same connection.
        fresh.set(
            "messages",
            messages_answer(
                '{"index":1,"type":"Text","text":"a\\ud800b"}',
                '{"index":2,"type":"Text","text":"fine"}',
            ),
        )
        await viewer.wait_for(lambda v: v.message_indices == [1, 2])
        assert viewer.connects == 1
    finally:
        await viewer.stop()
    assert "Traceback" not in hostile_bff.logs()


def deep(depth: int) -> str:
    return '{"statusCode":0,"messages":' + "[" * depth + "]" * depth + "}"


async def test_an_answer_nested_too_deep_degrades_and_recovers(
    hostile_bff: ServerProcess, fresh: HostileUpstream
) -> None:
    handle, chat_id = new_chat(hostile_bff, fresh)
    viewer = Viewer([hostile_bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.connects == 1 and v.of("state"))
        fresh.set("messages", Raw.json_text(deep(200_000)))
        fresh.set("send", Raw.json_text(deep(200_000).replace("messages", "x")))
        answer = await asyncio.to_thread(send, hostile_bff, handle)
        assert_error_shape(answer)
        assert answer.status_code == 502
        await viewer.wait_for(
            lambda v: any(e.data == {"upstream": "degraded"} for e in v.of("status"))
        )
        fresh.clear()
        fresh.say(chat_id, "back again")
        await viewer.wait_for(lambda v: any(e.data == {"upstream": "ok"} for e in v.of("status")))
        await viewer.wait_for(lambda v: 1 in v.message_indices)
        assert (await asyncio.to_thread(send, hostile_bff, handle)).status_code == 200
        assert viewer.connects == 1
    finally:
        await viewer.stop()
    logs = hostile_bff.logs()
    assert "Traceback" not in logs
    assert re.search(r"nested too deep|RecursionError", logs), "the cause was never logged"


async def test_cookies_with_control_characters_are_dropped(
    hostile_bff: ServerProcess, fresh: HostileUpstream
) -> None:
    handle, chat_id = new_chat(hostile_bff, fresh)
    fresh.say(chat_id, "hi")
    bad_cookies = (
        (b"Set-Cookie", b'ctl="a\x01b"; Path=/'),
        (b"Set-Cookie", b"obs=\xff\xfe; Path=/"),
        (b"Set-Cookie", b"tab=a\tb"),
        (b"Set-Cookie", b"good=kept-1; Path=/"),
    )
    ok = json.dumps(
        {"statusCode": 0, "messages": [{"index": 1, "type": "Text", "text": "hi"}]}
    ).encode()
    fresh.set(
        "messages", Raw(body=ok, headers=((b"Content-Type", b"application/json"), *bad_cookies))
    )
    fresh.set("send", Raw(body=b'{"statusCode":0}', headers=bad_cookies))
    url = f"{hostile_bff.url}/api/v2/chats/{handle}"
    assert httpx.get(url, timeout=10).status_code == 200
    answer = await asyncio.to_thread(send, hostile_bff, handle)
    assert answer.status_code == 200, answer.text
    polls = fresh.count("messages")
    await asyncio.sleep(1.0)
    assert fresh.count("messages") > polls + 2, "the poller stopped"
    head = fresh.last_head["messages"]
    cookie = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"cookie:"))
    assert b"good=kept-1" in cookie
    assert not re.search(rb"[\x00-\x1f\x7f-\xff]", cookie.split(b":", 1)[1].strip())
    assert "Traceback" not in hostile_bff.logs()


async def test_an_oversized_answer_is_refused_without_reading_it_all(
    hostile_bff: ServerProcess, fresh: HostileUpstream
) -> None:
    handle, chat_id = new_chat(hostile_bff, fresh)
    viewer = Viewer([hostile_bff.url], handle).start()
    try:
        await viewer.wait_for(lambda v: v.connects == 1 and v.of("state"))
        # The limit in this fixture is 1 MiB: 5 MiB of one message is refused.
        huge = "x" * (5 << 20)
        fresh.set("messages", messages_answer(f'{{"index":1,"type":"Text","text":"{huge}"}}'))
        fresh.set("send", Raw.json_text('{"statusCode":0,"pad":"' + huge + '"}'))
        answer = await asyncio.to_thread(send, hostile_bff, handle)
        assert_error_shape(answer)
        await viewer.wait_for(
            lambda v: any(e.data == {"upstream": "degraded"} for e in v.of("status"))
        )
        assert viewer.message_indices == []
        fresh.clear()
        fresh.say(chat_id, "small again")
        await viewer.wait_for(lambda v: v.message_indices == [1])
    finally:
        await viewer.stop()
