"""Client-facing request and response bodies, with the field limits of DESIGN.md.

Owns validation of what clients send, before anything is forwarded; the limits are part of the
public contract and shown in OpenAPI. It must not hold upstream wire shapes beyond these.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

NICKNAME_MAX = 64
SUBJECT_MAX = 256
TEXT_MAX = 4000
ENDPOINT_MAX = 128
USER_DATA_KEYS_MAX = 32
USER_DATA_KEY_MAX = 64
USER_DATA_VALUE_MAX = 1024


def _printable(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Nickname = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NICKNAME_MAX),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
]
Subject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SUBJECT_MAX),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TEXT_MAX),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
]
Endpoint = Annotated[
    str, StringConstraints(min_length=1, max_length=ENDPOINT_MAX), AfterValidator(_printable)
]
UserDataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=USER_DATA_KEY_MAX), AfterValidator(_printable)
]
UserDataValue = Annotated[
    str, StringConstraints(max_length=USER_DATA_VALUE_MAX), AfterValidator(_printable)
]
UserData = Annotated[dict[UserDataKey, UserDataValue], Field(max_length=USER_DATA_KEYS_MAX)]
# An app's push token (APNs, FCM, ...), opaque to us: visible ASCII, no spaces.
PUSH_TOKEN_MAX = 1024
PushToken = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PUSH_TOKEN_MAX, pattern=r"^[\x21-\x7e]+$"),
    Field(description="Passed through in push notices (docs/webhooks.md); never sent upstream"),
]


class RequestChatBody(BaseModel):
    """RequestChat as the upstream documents it. Unknown fields are dropped, never forwarded."""

    model_config = ConfigDict(extra="ignore")
    operationName: Literal["RequestChat"]
    nickname: Nickname
    subject: Subject
    endpoint: Endpoint | None = None
    userData: UserData | None = None
    pushToken: PushToken | None = None


class SendMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    operationName: Literal["SendMessage"]
    text: Text


class NotificationBody(BaseModel):
    """Typing notifications and Complete carry nothing but their operationName."""

    model_config = ConfigDict(extra="ignore")
    operationName: Literal["SendStartTypingNotification", "SendStopTypingNotification", "Complete"]


ChatOperationBody = Annotated[
    SendMessageBody | NotificationBody, Field(discriminator="operationName")
]


class ChatCreatedOut(BaseModel):
    id: str = Field(description="The chat handle: opaque; use it wherever the chat id goes")
    statusCode: int = 0
    path: str


class StatusOut(BaseModel):
    statusCode: int = 0


class ChatOut(BaseModel):
    id: str
    state: str
    capabilities: list[str]
    participants: list[dict[str, Any]]


class ChatResourceOut(BaseModel):
    chat: ChatOut
    statusCode: int = 0


class MessagesOut(BaseModel):
    messages: list[dict[str, Any]]
    statusCode: int = 0


class ErrorOut(BaseModel):
    statusCode: int
    statusMessage: str
