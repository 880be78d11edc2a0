"""What clients send: the API's request bodies, with the field limits of DESIGN.md.

Owns validation of what clients send, before anything is forwarded or stored: the chat
operations, a left message (`OfflineMessageBody`) and a survey (`SurveyBody`). The limits are
part of the public contract and shown in OpenAPI. It must not hold upstream wire shapes
beyond these (what clients read: `answers.py`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    StrictInt,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

NICKNAME_MAX = 64
SUBJECT_MAX = 256
TEXT_MAX = 4000
ENDPOINT_MAX = 128
USER_DATA_KEYS_MAX = 32
USER_DATA_KEY_MAX = 64
USER_DATA_VALUE_MAX = 1024


# `_printable` and `_not_blank` as JSON-schema patterns, so clients and fuzzers see what is
# refused: control characters (Unicode Cc) other than tab and line breaks, and text that is
# only whitespace. Documentation only: the validators above stay the check.
_NO_CONTROL = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*"
NO_CONTROL_PATTERN = f"^{_NO_CONTROL}$"
NOT_BLANK_PATTERN = rf"^(?=[\s\S]*\S){_NO_CONTROL}$"


@dataclass(frozen=True, slots=True)
class JsonPattern:
    """Adds `pattern` to a string's JSON schema (or, with `keys`, to an object's
    `propertyNames`) without enforcing it (see above)."""

    pattern: str
    keys: bool = False

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = schema.setdefault("propertyNames", {}) if self.keys else schema
        target["pattern"] = self.pattern
        return schema


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
    JsonPattern(NOT_BLANK_PATTERN),
]
Subject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SUBJECT_MAX),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
    JsonPattern(NOT_BLANK_PATTERN),
]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TEXT_MAX),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
    JsonPattern(NOT_BLANK_PATTERN),
]
Endpoint = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ENDPOINT_MAX),
    AfterValidator(_printable),
    JsonPattern(NO_CONTROL_PATTERN),
]
UserDataKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=USER_DATA_KEY_MAX),
    AfterValidator(_printable),
]
UserDataValue = Annotated[
    str,
    StringConstraints(max_length=USER_DATA_VALUE_MAX),
    AfterValidator(_printable),
    JsonPattern(NO_CONTROL_PATTERN),
]
UserData = Annotated[
    dict[UserDataKey, UserDataValue],
    Field(max_length=USER_DATA_KEYS_MAX),
    JsonPattern(NO_CONTROL_PATTERN, keys=True),
]
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


# --- Leave-a-message (`app/outbox/offline.py` takes it).

EMAIL_MAX = 254

Email = Annotated[EmailStr, StringConstraints(max_length=EMAIL_MAX)]


class OfflineMessageBody(BaseModel):
    """A message left while the chat is closed or unavailable. Unknown fields are dropped."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "nickname": "Chris",
                    "email": "chris@example.com",
                    "subject": "Order 1234",
                    "text": "My parcel has not arrived, please call me back.",
                }
            ]
        },
    )
    nickname: Nickname
    email: Email = Field(description="Checked for syntax only (no DNS lookup)")
    text: Text
    subject: Subject | None = None
    userData: UserData | None = None


# --- Post-chat surveys (`app/outbox/survey.py` takes them).

COMMENT_MAX = 1000

Comment = Annotated[
    str,
    StringConstraints(max_length=COMMENT_MAX),
    AfterValidator(_printable),
    JsonPattern(NO_CONTROL_PATTERN),
]


class SurveyBody(BaseModel):
    """How the chat went. Unknown fields are refused (a typo would lose an answer)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rating": 5, "comment": "Quick and kind, thank you!"}]},
    )
    rating: StrictInt = Field(ge=1, le=5, description="1 (very poor) to 5 (excellent)")
    comment: Comment | None = Field(
        default=None, description=f"Optional, at most {COMMENT_MAX} characters"
    )
