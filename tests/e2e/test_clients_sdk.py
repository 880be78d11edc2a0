"""A Python SDK generated from a live instance's `/openapi.json` by a generator we did not
write (openapi-python-client), running a whole chat against that instance and the emulator:
what an app developer gets by following docs/api.md."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.emulator.agent import REPLIES
from harness.chats import wait_for
from harness.servers import ServerProcess

PACKAGE = "chat_bff_sdk"


@pytest.fixture(scope="module")
def sdk(bff: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    where = tmp_path_factory.mktemp("sdk")
    spec = where / "openapi.json"
    spec.write_text(json.dumps(httpx.get(bff.url + "/openapi.json", timeout=10).json()))
    bin_dir = Path(sys.executable).parent
    generated = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
        ],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # The generator warns about anything in the document it could not turn into code.
    assert "warning" not in (generated.stdout + generated.stderr).lower(), generated.stdout
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def client(sdk: ModuleType, bff: ServerProcess) -> Iterator[Any]:
    with sdk.Client(
        base_url=bff.url, raise_on_unexpected_status=True, timeout=httpx.Timeout(40)
    ) as http:
        yield http


def _mod(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def _frames(text: str) -> list[dict[str, Any]]:
    """Server-Sent Events as objects ({event, id, data}), comments skipped."""
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        frame: dict[str, Any] = {}
        for line in block.splitlines():
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                frame["event"] = value
            elif field == "id":
                frame["id"] = value
            elif field == "data":
                frame["data"] = json.loads(value)
        if "event" in frame:
            frames.append(frame)
    return frames


def test_generated_sdk_runs_a_whole_chat(client: Any) -> None:
    models = _mod("models")
    request_chat = _mod("api.chats.request_chat")
    get_chat = _mod("api.chats.get_chat")
    get_my_chat = _mod("api.chats.get_my_chat")
    get_messages = _mod("api.chats.get_messages")
    operate_chat = _mod("api.chats.operate_chat")
    chat_events = _mod("api.events.chat_events")

    created = request_chat.sync(
        client=client,
        body=models.RequestChatBody(
            operation_name="RequestChat", nickname="Sam", subject="Generated SDK"
        ),
    )
    assert isinstance(created, models.ChatCreated), created
    handle = created.id
    assert created.path == f"/api/v2/chats/{handle}"

    def chatting() -> Any:
        answer = get_chat.sync(handle, client=client)
        assert isinstance(answer, models.ChatResponse), answer
        return answer.chat.state == models.ChatStateName.CHATTING and answer.chat

    chat = wait_for(chatting, what="the agent")
    assert {p.type_ for p in chat.participants} == {
        models.ParticipantType.AGENT,
        models.ParticipantType.CUSTOMER,
    }
    assert all(isinstance(p.participant_id, str) for p in chat.participants)
    mine = get_my_chat.sync(handle, client=client)
    assert isinstance(mine, models.ChatResponse)
    assert mine.chat.id == handle

    sent = operate_chat.sync(
        handle,
        client=client,
        body=models.SendMessageBody(operation_name="SendMessage", text="Where is my parcel?"),
    )
    assert isinstance(sent, models.OperationResult)
    assert sent.status_code == 0

    # Long-poll from the next index until the agent's reply arrives, as an app would.
    transcript: list[Any] = []
    while not any(m.text == REPLIES[0] for m in transcript):
        page = get_messages.sync(
            handle, client=client, index=len(transcript) and transcript[-1].index + 1, wait=10
        )
        assert isinstance(page, models.MessageList), page
        transcript.extend(page.messages)
        assert len(transcript) < 50
    types = {m.type_ for m in transcript}
    assert {models.MessageType("ParticipantJoined"), models.MessageType("Text")} <= types
    reply = next(m for m in transcript if m.text == REPLIES[0])
    assert reply.from_.type_ == models.ParticipantType.AGENT
    assert [m.index for m in transcript] == sorted({m.index for m in transcript})

    for operation in ("SendStartTypingNotification", "SendStopTypingNotification", "Complete"):
        body = models.NotificationBody(
            operation_name=models.NotificationBodyOperationname(operation)
        )
        done = operate_chat.sync(handle, client=client, body=body)
        assert isinstance(done, models.OperationResult)
    ended = get_chat.sync(handle, client=client)
    assert ended.chat.state == models.ChatStateName.IDLE

    # Errors come back as the documented Error model, with the upstream's status codes.
    again = operate_chat.sync_detailed(
        handle, client=client, body=models.SendMessageBody(operation_name="SendMessage", text="?")
    )
    assert again.status_code == 409
    assert isinstance(again.parsed, models.Error)
    assert again.parsed.status_code == 2
    forged = get_chat.sync_detailed("x" * 60, client=client)
    assert forged.status_code == 404
    assert forged.parsed.status_code == 6
    bad = get_messages.sync_detailed(handle, client=client, index=-1)
    assert bad.status_code == 400
    assert bad.parsed.status_code == 10

    # The stream of an ended chat closes after `end`, so a plain HTTP read gets all of it;
    # each event's data parses into the generated models.
    text = chat_events.sync(handle, client=client)
    frames = _frames(text)
    assert frames[0]["event"] == "state"
    assert frames[-1]["event"] == "end"
    parsed = [
        {
            "state": models.StateEvent,
            "message": models.MessageEvent,
            "status": models.StatusEvent,
            "end": models.EndEvent,
        }[frame["event"]].from_dict(frame)
        for frame in frames
    ]
    assert parsed[0].data.state == models.ChatStateName.IDLE
    streamed = [p.data.index for p in parsed if isinstance(p, models.MessageEvent)]
    assert streamed[: len(transcript)] == [m.index for m in transcript]


def test_generated_models_pass_unknown_message_types_through(sdk: ModuleType) -> None:
    models = _mod("models")
    entry = {
        "index": 12,
        "type": "FileUploaded",
        "fileName": "receipt.pdf",
        "from": {"nickname": "Bot", "participantId": "9", "type": "System"},
        "utcTime": 1732790000000,
    }
    message = models.Message.from_dict(entry)
    assert message.type_ == "FileUploaded"
    assert message.from_.type_ == "System"
    assert message.additional_properties == {"fileName": "receipt.pdf", "utcTime": 1732790000000}
    assert message.to_dict() == entry
