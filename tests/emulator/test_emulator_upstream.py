"""The emulator's upstream surface (/api/v2): shapes, journey and field variations."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.emulator.agent import CANNED, GOODBYE, NOTICE, REPLIES, bot_line
from app.emulator.pacing import Pace

from .inprocess import CC_ID, Harness, HarnessFactory

ALL_OPERATIONS = [
    "SendMessage",
    "SendStartTypingNotification",
    "SendStopTypingNotification",
    "Complete",
]


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["type"], m["from"]["type"]) for m in messages]


async def test_request_chat_answers_the_documented_shape(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": "Chris", "subject": "Order"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "statusCode", "path"}
    assert body["statusCode"] == 0
    assert body["path"] == f"/api/v2/chats/{body['id']}"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["id"])
    chat = await harness.chat(body["id"])
    assert chat["state"] == "WaitingForAgent"
    assert chat["capabilities"] == ALL_OPERATIONS
    assert chat["participants"] == [{"nickname": "Chris", "participantId": "1", "type": "Customer"}]
    [joined] = await harness.messages(body["id"])
    assert joined["index"] == 1
    assert joined["type"] == "ParticipantJoined"
    assert joined["from"] == {"nickname": "Chris", "participantId": "1", "type": "Customer"}


async def test_full_journey(harness: Harness) -> None:
    chat_id = await harness.request_chat("Chris")

    greeting = await harness.wait_for_message(chat_id, type="Text", from_type="Agent")
    assert greeting["text"] == "Hello Chris, my name is Kristi. How can I help you?"
    chat = await harness.chat(chat_id)
    assert chat["state"] == "Chatting"
    assert {"nickname": "Kristi", "participantId": "2", "type": "Agent"} in chat["participants"]
    assert kinds(await harness.messages(chat_id)) == [
        ("ParticipantJoined", "Customer"),
        ("ParticipantJoined", "Agent"),
        ("Notice", "External"),
        ("Text", "Agent"),
    ]
    notice = (await harness.messages(chat_id, index=3))[0]
    assert notice["text"] == NOTICE

    for operation, fields in [
        ("SendStartTypingNotification", {}),
        ("SendMessage", {"text": "Where is my order?"}),
        ("SendStopTypingNotification", {}),
    ]:
        response = await harness.op(chat_id, operation, **fields)
        assert response.status_code == 200
        assert response.json() == {"statusCode": 0}

    reply = await harness.wait_for_message(chat_id, type="TypingStopped", from_type="Agent")
    transcript = await harness.messages(chat_id)
    assert kinds(transcript[4:]) == [
        ("TypingStarted", "Customer"),
        ("Text", "Customer"),
        ("TypingStopped", "Customer"),
        ("TypingStarted", "Agent"),
        ("Text", "Agent"),
        ("TypingStopped", "Agent"),
    ]
    assert transcript[5]["text"] == "Where is my order?"
    assert transcript[8]["text"] == REPLIES[0]
    assert [m["index"] for m in transcript] == list(range(1, len(transcript) + 1))
    assert reply["index"] == len(transcript)

    # Reads with an explicit index return index >= N.
    tail = await harness.messages(chat_id, index=9)
    assert [m["index"] for m in tail] == [9, 10]
    assert await harness.messages(chat_id, index=99) == []

    response = await harness.op(chat_id, "Complete")
    assert response.json() == {"statusCode": 0}
    chat = await harness.chat(chat_id)
    assert chat["state"] == "Idle"
    assert chat["capabilities"] == ALL_OPERATIONS  # documented variation: even when Idle
    last = (await harness.messages(chat_id))[-1]
    assert (last["type"], last["from"]["type"]) == ("ParticipantLeft", "Customer")

    for operation in ALL_OPERATIONS:
        response = await harness.op(chat_id, operation, text="again")
        assert response.status_code == 400
        assert set(response.json()) == {"statusCode", "statusMessage"}
        assert response.json()["statusCode"] == 2
    assert (await harness.messages(chat_id))[-1] == last  # a failed request changed nothing


async def test_text_with_bye_makes_the_agent_say_goodbye_and_leave(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    await harness.wait_for_message(chat_id, type="Text", from_type="Agent")
    await harness.op(chat_id, "SendMessage", text="OK, BYE then")
    await harness.wait_for_message(chat_id, type="ParticipantLeft", from_type="Agent")
    transcript = await harness.messages(chat_id)
    texts = [m["text"] for m in transcript if m["type"] == "Text"]
    assert texts[-1] == GOODBYE
    chat = await harness.chat(chat_id)
    assert chat["state"] == "Idle"
    assert [p["type"] for p in chat["participants"]] == ["Customer"]
    assert (await harness.op(chat_id, "SendMessage", text="hello?")).status_code == 400


async def test_texts_sent_while_waiting_are_answered_after_the_greeting(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness(agent_join_delay_s=0.1)
    chat_id = await harness.request_chat()
    await harness.op(chat_id, "SendMessage", text="Anyone there?")
    assert (await harness.chat(chat_id))["state"] == "WaitingForAgent"
    await harness.wait_for_message(chat_id, type="Text", from_type="Agent", text=REPLIES[0])
    agent_texts = [
        m["text"]
        for m in await harness.messages(chat_id)
        if (m["type"], m["from"]["type"]) == ("Text", "Agent")
    ]
    assert agent_texts[0].startswith("Hello Chris")


async def test_the_scripted_agent_follows_its_pace(make_harness: HarnessFactory) -> None:
    """A bot line before the join with no typing notice, every reply announced by typing, and
    (at a canned share of 1) each followed by a canned line with no typing notice."""
    quick = Pace(
        "quick",
        join_s=(0.15, 0.15),
        think_s=(0.02, 0.02),
        typing_s=(0.05, 0.05),
        canned_share=1.0,
        canned_s=(0.02, 0.02),
        bot_s=(0.02, 0.02),
    )
    harness = await make_harness(pace=quick, seed=1)
    chat_id = await harness.request_chat()
    await harness.wait_for_message(chat_id, type="ParticipantJoined", from_type="Agent")
    await harness.op(chat_id, "SendMessage", text="Where is my parcel?")
    await harness.wait_for_message(chat_id, type="Text", text=CANNED[0])
    transcript = await harness.messages(chat_id)
    assert [(m["type"], m["from"]["type"], m.get("text")) for m in transcript] == [
        ("ParticipantJoined", "Customer", None),
        ("Text", "External", bot_line("Chris")),
        ("ParticipantJoined", "Agent", None),
        ("Notice", "External", NOTICE),
        ("Text", "Agent", transcript[4]["text"]),
        ("Text", "Customer", "Where is my parcel?"),
        ("TypingStarted", "Agent", None),
        ("Text", "Agent", REPLIES[0]),
        ("TypingStopped", "Agent", None),
        ("Text", "Agent", CANNED[0]),
    ]
    assert transcript[1]["from"]["nickname"] == "Assistant"
    assert (await harness.chat(chat_id))["participants"][0]["type"] == "Agent"


async def test_index_zero_answers_an_empty_list(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    assert await harness.messages(chat_id, index=0) == []
    assert len(await harness.messages(chat_id, index=1)) == 1
    assert len(await harness.messages(chat_id, index=-5)) == 1


async def test_hidden_cursor_is_shared_by_every_index_less_reader(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    other = harness.new_client()
    await harness.wait_for_message(chat_id, type="Text", from_type="Agent")

    first = await harness.messages(chat_id, index=None)
    assert [m["index"] for m in first] == [1, 2, 3, 4]
    # A second reader gets nothing: the first one "stole" the messages.
    response = await other.get(f"/api/v2/chats/{chat_id}/messages")
    assert response.json() == {"messages": [], "statusCode": 0}

    await harness.op(chat_id, "SendMessage", text="hi")
    response = await other.get(f"/api/v2/chats/{chat_id}/messages")
    assert [m["index"] for m in response.json()["messages"]] == [5]
    assert await harness.messages(chat_id, index=None) == []
    # Explicit-index reads neither see nor move the hidden cursor.
    assert len(await harness.messages(chat_id, index=1)) == 5
    assert harness.emulator.view(chat_id)["hidden_cursor"] == 5


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/messages"), ("GET", "/messages?index=1"), ("POST", "")],
)
async def test_unknown_chat_is_a_plain_text_400(harness: Harness, method: str, suffix: str) -> None:
    body = {"operationName": "SendMessage", "text": "hi"} if method == "POST" else None
    response = await harness.client.request(method, f"/api/v2/chats/nope-123{suffix}", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Chat not found nope-123"


@pytest.mark.parametrize(
    "headers",
    [{}, {"ContactCenterId": "someone-else"}, {"ContactCenterId": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_contact_center_id_is_required(harness: Harness, headers: dict[str, str]) -> None:
    chat_id = await harness.request_chat()
    client = harness.new_client(headers=headers)
    for response in [
        await client.get(f"/api/v2/chats/{chat_id}"),
        await client.post("/api/v2/chats", json={"operationName": "RequestChat"}),
    ]:
        assert response.status_code == 400
        assert response.json() == {"statusCode": 3, "statusMessage": "Operation forbidden"}
    assert len(harness.emulator.chats) == 1


async def test_contact_center_id_may_be_ignored(make_harness: HarnessFactory) -> None:
    harness = await make_harness(contact_center_id=None)
    client = harness.new_client(headers={})
    response = await client.post(
        "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "A", "subject": "B"}
    )
    assert response.status_code == 200


async def test_authorization_header_is_a_staff_user(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    response = await harness.client.get(
        f"/api/v2/chats/{chat_id}", headers={"Authorization": "Bearer x", "ContactCenterId": CC_ID}
    )
    assert response.status_code == 403
    assert set(response.json()) == {"statusCode", "statusMessage"}
    assert response.json()["statusCode"] == 5


REQUEST_CHAT_MALFORMED: list[tuple[str, bytes]] = [
    ("missing nickname", b'{"operationName": "RequestChat", "subject": "S"}'),
    ("empty nickname", b'{"operationName": "RequestChat", "nickname": "", "subject": "S"}'),
    ("blank subject", b'{"operationName": "RequestChat", "nickname": "N", "subject": "  "}'),
    ("missing subject", b'{"operationName": "RequestChat", "nickname": "N"}'),
    ("invalid json", b'{"operationName": "RequestChat", "nickname": "N" "subject": "S"}'),
    ("not an object", b'["RequestChat"]'),
    ("wrong operation", b'{"operationName": "Complete", "nickname": "N", "subject": "S"}'),
    (
        "nested userData",
        b'{"operationName": "RequestChat", "nickname": "N", "subject": "S",'
        b' "userData": {"a": {"b": "c"}}}',
    ),
]

CHAT_OPERATION_MALFORMED: list[tuple[str, bytes]] = [
    ("invalid json", b"{operationName: SendMessage}"),
    ("SendMessage without text", b'{"operationName": "SendMessage"}'),
    ("SendMessage with empty text", b'{"operationName": "SendMessage", "text": ""}'),
    ("SendMessage with non-string text", b'{"operationName": "SendMessage", "text": 5}'),
    ("unknown operation", b'{"operationName": "Transfer"}'),
    ("missing operation", b'{"text": "hi"}'),
    ("empty body", b""),
]


def assert_html_500(response: Any) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html><body><h1>500 Internal Server Error</h1>")


@pytest.mark.parametrize(("case", "body"), REQUEST_CHAT_MALFORMED, ids=lambda v: str(v)[:20])
async def test_malformed_request_chat_crashes_with_html(
    harness: Harness, case: str, body: bytes
) -> None:
    response = await harness.client.post(
        "/api/v2/chats", content=body, headers={"content-type": "application/json"}
    )
    assert_html_500(response)
    assert harness.emulator.chats == {}


@pytest.mark.parametrize(("case", "body"), CHAT_OPERATION_MALFORMED, ids=lambda v: str(v)[:20])
async def test_malformed_chat_operation_crashes_with_html(
    harness: Harness, case: str, body: bytes
) -> None:
    chat_id = await harness.request_chat()
    response = await harness.client.post(
        f"/api/v2/chats/{chat_id}", content=body, headers={"content-type": "application/json"}
    )
    assert_html_500(response)
    assert len(harness.emulator.chat(chat_id).transcript) == 1


async def test_non_numeric_index_crashes_with_html(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    response = await harness.client.get(f"/api/v2/chats/{chat_id}/messages?index=abc")
    assert_html_500(response)


async def test_numeric_participant_ids_and_short_chat_ids(make_harness: HarnessFactory) -> None:
    harness = await make_harness(numeric_participant_ids=True, chat_id_style="short")
    chat_id = await harness.request_chat()
    assert re.fullmatch(r"0000[A-Za-z0-9]{12}", chat_id)
    await harness.wait_for_message(chat_id, type="Text", from_type="Agent")
    chat = await harness.chat(chat_id)
    assert sorted(p["participantId"] for p in chat["participants"]) == [1, 2]
    messages = await harness.messages(chat_id)
    assert all(isinstance(m["from"]["participantId"], int) for m in messages)


@pytest.mark.parametrize("include_timestamps", [True, False])
async def test_timestamps_and_visibility(
    make_harness: HarnessFactory, include_timestamps: bool
) -> None:
    harness = await make_harness(include_timestamps=include_timestamps)
    chat_id = await harness.request_chat()
    await harness.op(chat_id, "SendMessage", text="hi")
    joined, text = await harness.messages(chat_id)
    assert text["visibility"] == "ALL"
    assert "visibility" not in joined
    if include_timestamps:
        assert isinstance(joined["utcTime"], int)
        assert joined["utcTime"] > 1_600_000_000_000
    else:
        assert "utcTime" not in joined
        assert "utcTime" not in text


async def test_user_data_and_endpoint_are_stored(harness: Harness) -> None:
    chat_id = await harness.request_chat(userData={"orderId": "42", "lang": "en"}, endpoint="q1")
    view = harness.emulator.view(chat_id)
    assert view["userData"] == {"orderId": "42", "lang": "en"}
    assert view["endpoint"] == "q1"
    assert view["nickname"] == "Chris"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v2/other", 404),
        ("DELETE", "/api/v2/chats/x", 405),
        ("PUT", "/api/v2/chats", 405),
        ("POST", "/api/v2/chats/x/messages", 405),
    ],
)
async def test_undocumented_routes_answer_plain_text(
    harness: Harness, method: str, path: str, status: int
) -> None:
    response = await harness.client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
