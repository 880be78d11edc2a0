"""What clients read: the API's documented answers, and the payloads of the stream's events.

Owns the answers' schemas for OpenAPI and SDK generators (the chat, its participants and
transcript entries, errors, availability) and the `data:` of each Server-Sent Event type. The
reads are not validated against them on the way out (they are the upstream's entries, passed
through); what clients send is `bodies.py`. The class names are the OpenAPI schema names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.events import EventKind

HANDLE_EXAMPLE = "AZ4p1pe8lDq0jE7Sx1l0Yk0wq0W3U6cKcQ2nJfZxE4U8p4c7J3n0p5yAq9YfC7vDs0Q"

KNOWN_MESSAGE_TYPES = (
    "Text",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantRejoined",
    "TypingStarted",
    "TypingStopped",
    "TranscriptSaveDone",
    "Notice",
)


class MessageType(StrEnum):
    """The transcript entry types the upstream documents. Others may come and are passed on
    as plain strings: clients must treat an unknown type as opaque, not fail on it."""

    TEXT = "Text"
    PARTICIPANT_JOINED = "ParticipantJoined"
    PARTICIPANT_LEFT = "ParticipantLeft"
    PARTICIPANT_REJOINED = "ParticipantRejoined"
    TYPING_STARTED = "TypingStarted"
    TYPING_STOPPED = "TypingStopped"
    TRANSCRIPT_SAVE_DONE = "TranscriptSaveDone"
    NOTICE = "Notice"


class ParticipantType(StrEnum):
    """Documented participant types; others are passed on as plain strings."""

    CUSTOMER = "Customer"
    AGENT = "Agent"
    EXTERNAL = "External"


class ChatStateName(StrEnum):
    """Documented chat states; others are passed on as plain strings."""

    WAITING_FOR_AGENT = "WaitingForAgent"
    CHATTING = "Chatting"
    IDLE = "Idle"


class Participant(BaseModel):
    """A party of the chat, as the upstream sent it (`participantId` always a string here)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"nickname": "Kristi", "participantId": "2", "type": "Agent"}]
        },
    )
    nickname: str | None = None
    participantId: str | None = Field(
        default=None, description="A string, even where the upstream sends a number"
    )
    type: ParticipantType | str | None = None


class Message(BaseModel):
    """One transcript entry. `index` and `type` are always present; every other field the
    upstream sent is passed on (`timestamp`, `utcTime`, `timestampSeconds` in milliseconds,
    `visibility` where the upstream has them)."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "index": 7,
                    "type": "Text",
                    "text": "How can I help you?",
                    "from": {"nickname": "Kristi", "participantId": "2", "type": "Agent"},
                }
            ]
        },
    )
    index: int = Field(ge=1, description="Position in the transcript, from 1, increasing")
    type: MessageType | str = Field(description="One of the documented types, or any other")
    text: str | None = Field(default=None, description="The text of `Text` and `Notice` entries")
    from_: Participant | None = Field(default=None, alias="from")


class Chat(BaseModel):
    """The chat resource. `id` is the chat handle. Also the payload of the `state` event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": HANDLE_EXAMPLE,
                    "state": "Chatting",
                    "capabilities": [
                        "SendMessage",
                        "SendStartTypingNotification",
                        "SendStopTypingNotification",
                        "Complete",
                    ],
                    "participants": [
                        {"nickname": "Kristi", "participantId": "2", "type": "Agent"},
                        {"nickname": "Chris", "participantId": "1", "type": "Customer"},
                    ],
                }
            ]
        }
    )
    id: str = Field(description="The chat handle")
    state: ChatStateName | str = Field(
        description="WaitingForAgent, Chatting, Idle (over for the customer), or another value"
    )
    capabilities: list[str] = Field(description="The operations valid in this state")
    participants: list[Participant]


class ChatCreated(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": HANDLE_EXAMPLE, "statusCode": 0, "path": f"/api/v2/chats/{HANDLE_EXAMPLE}"}
            ]
        }
    )
    id: str = Field(description="The chat handle: opaque; use it wherever the chat id goes")
    statusCode: int = Field(default=0, description="0: success")
    path: str = Field(description="The chat's path, relative to the base URL")


class OperationResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"statusCode": 0}]})
    statusCode: int = Field(default=0, description="0: success")


class ChatResponse(BaseModel):
    chat: Chat
    statusCode: int = Field(default=0, description="0: success")


class MessageList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {
                            "index": 4,
                            "type": "TypingStarted",
                            "from": {"nickname": "Chris", "participantId": "1", "type": "Customer"},
                        },
                        {
                            "index": 5,
                            "type": "Text",
                            "text": "Where is my order?",
                            "from": {"nickname": "Chris", "participantId": "1", "type": "Customer"},
                        },
                    ],
                    "statusCode": 0,
                }
            ]
        }
    )
    messages: list[Message] = Field(description="In index order, each index once")
    statusCode: int = Field(default=0, description="0: success")


class Error(BaseModel):
    """Every error, in the upstream's shape."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"statusCode": 6, "statusMessage": "Chat not found"}]}
    )
    statusCode: int = Field(
        description="1 missing parameter, 2 not valid in this state, 3 forbidden or rate "
        "limited, 4 internal/upstream error, 6 not found, 10 invalid input, 12 unavailable"
    )
    statusMessage: str


# --- Server-Sent Event payloads (`GET .../events`): the `data:` of each event type.


class UpstreamStatusPayload(BaseModel):
    """`status` event: the chat service became unreachable, or is back."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"upstream": "degraded"}]})
    upstream: Literal["ok", "degraded"]


class EndPayload(BaseModel):
    """`end` event: the chat is over; the server closes the stream after it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})


class StateEvent(BaseModel):
    """`event: state`: sent first on every connection, then on each change."""

    event: Literal[EventKind.STATE]
    retry: int | None = Field(default=None, description="Reconnect delay hint (ms), first only")
    data: Chat


class MessageEvent(BaseModel):
    """`event: message`: one transcript entry; `id` is its index (resume with Last-Event-ID)."""

    event: Literal[EventKind.MESSAGE]
    id: str = Field(pattern=r"^[0-9]+$", description="The message index")
    data: Message


class StatusEvent(BaseModel):
    event: Literal[EventKind.STATUS]
    data: UpstreamStatusPayload


class EndEvent(BaseModel):
    event: Literal[EventKind.END]
    data: EndPayload


SSE_EVENT_MODELS: tuple[type[BaseModel], ...] = (StateEvent, MessageEvent, StatusEvent, EndEvent)


class Availability(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "open": False,
                    "reason": "closed",
                    "nextOpen": "2026-12-28T09:00:00+01:00",
                    "statusCode": 0,
                }
            ]
        }
    )
    open: bool
    reason: Literal["closed", "unavailable"] | None = Field(
        description="closed: outside business hours; unavailable: the chat service is failing"
    )
    nextOpen: str | None = Field(
        description="ISO 8601 start of the next opening while closed, else null"
    )
    statusCode: int = 0
