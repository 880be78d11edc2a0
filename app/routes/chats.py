"""The upstream-compatible REST routes: RequestChat, chat operations, chat and message reads.

Thin: validates input (`app.api.bodies`), applies per-IP limits, calls `ChatService`, and shapes
answers exactly like the upstream's, with the handle wherever an id appears.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from app.api.answers import ChatCreated, ChatResponse, MessageList, OperationResult
from app.api.bodies import ChatOperationBody, RequestChatBody, SendMessageBody
from app.api.openapi import INDEX_SCHEMA, errors
from app.core.service import chat_json
from app.edge.idempotency import admit
from app.errors import InvalidInputError
from app.models import TranscriptEntry
from app.routes.deps import (
    AdmissionDep,
    ChatRefDep,
    ClientKeyDep,
    CreateLimitDep,
    LongPollMaxDep,
    OfflineDep,
    SendLimitDep,
    ServiceDep,
)
from app.routes.params import parse_index, parse_wait

# The errors each route can really answer (403: a browser from a foreign origin, anywhere
# under /api/; 413/415: bodies, so POSTs only; 503: the bus, anywhere).
POST_ERRORS = (400, 403, 413, 415, 429, 502, 503, 504)
READ_ERRORS = (403, 404, 503)

router = APIRouter(prefix="/api/v2", tags=["chats"])

NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/chats",
    response_model=ChatCreated,
    # 409: outside business hours ("closed"), or the chat service answered "not now";
    # 404: the chat service itself answered "not found".
    responses=errors(*POST_ERRORS, 404, 409),
    summary="RequestChat",
    description="Starts a chat. Answers the chat handle: use it wherever the chat id goes.",
)
async def request_chat(
    body: RequestChatBody,
    service: ServiceDep,
    offline: OfflineDep,
    limiter: CreateLimitDep,
    client: ClientKeyDep,
    request: Request,
    response: Response,
) -> ChatCreated:
    offline.require_open()
    await limiter.hit(client)
    admit(request.scope)  # from here, an Idempotency-Key's refusal is a final answer
    ref = await service.create(
        body.nickname,
        body.subject,
        endpoint=body.endpoint,
        user_data=body.userData,
        push_token=body.pushToken,
        client=client,
    )
    response.headers.update(NO_STORE)
    return ChatCreated(id=ref.handle, path=f"/api/v2/chats/{ref.handle}")


@router.post(
    "/chats/{handle}",
    response_model=OperationResult,
    responses=errors(*POST_ERRORS, 404, 409),
    summary="SendMessage, SendStartTypingNotification, SendStopTypingNotification, Complete",
    description=(
        "One of the four chat operations, chosen by `operationName`. Complete ends the chat "
        "for the customer: later operations answer 409."
    ),
)
async def operate_chat(
    ref: ChatRefDep,
    body: Annotated[ChatOperationBody, Body()],
    service: ServiceDep,
    limiter: SendLimitDep,
    client: ClientKeyDep,
    request: Request,
    response: Response,
) -> OperationResult:
    await limiter.hit(client)
    admit(request.scope)
    text = body.text if isinstance(body, SendMessageBody) else None
    await service.operate(ref, body.operationName, text)
    response.headers.update(NO_STORE)
    return OperationResult()


def _answer(payload: dict[str, Any]) -> JSONResponse:
    # Reads answer JSONResponse directly: the response models document the shape, but
    # validating every cached read against them again would cost more than the read itself.
    return JSONResponse(payload, headers=NO_STORE)


def _messages(messages: list[TranscriptEntry]) -> Response:
    """GetMessages' answer, the cached JSON texts joined as they are (no decoding)."""
    body = '{"messages":[' + ",".join(m.raw for m in messages) + '],"statusCode":0}'
    return Response(body.encode(), media_type="application/json", headers=NO_STORE)


GET_CHAT: dict[str, Any] = {
    "response_model": ChatResponse,
    "responses": errors(*READ_ERRORS),
    "summary": "GetChat",
    "description": "The chat resource, served from the shared cache.",
}


@router.get("/chats/{handle}", **GET_CHAT)
async def get_chat(ref: ChatRefDep, service: ServiceDep, client: ClientKeyDep) -> JSONResponse:
    state = await service.chat(ref, client)
    return _answer({"chat": chat_json(ref.handle, state), "statusCode": 0})


MESSAGES_DESCRIPTION = (
    "Served from the shared cache. With `index`: messages with index >= index; add "
    "`wait` (seconds, long-poll) to hold the request until one exists or `wait` passes. "
    "Without `index`: the messages this chat's index-less readers were not given yet."
)
# Parsed by app/routes/params.py (400 on a bad value, in the upstream's shape); documented
# as the numbers they are, with the maximum `wait` filled in from the settings (app/api/openapi.py).
IndexQuery = Annotated[
    str | None,
    Query(description="Messages with index >= this; 0 or 1 means the whole transcript"),
    WithJsonSchema(INDEX_SCHEMA),
]
WaitQuery = Annotated[
    str | None,
    Query(description="Long-poll: seconds to wait for a message; needs `index`"),
    WithJsonSchema({"type": "number", "minimum": 0}),
]
GET_MESSAGES: dict[str, Any] = {
    "response_model": MessageList,
    # 429: a waiting long-poll over the per-client cap, or reads below the cache too often;
    # 502/504: the upstream, when asked for what the bounded cache no longer holds.
    "responses": errors(400, 429, 502, 504, *READ_ERRORS),
    "summary": "GetMessages",
    "description": MESSAGES_DESCRIPTION,
}


@router.get("/chats/{handle}/messages", **GET_MESSAGES)
async def get_messages(
    ref: ChatRefDep,
    service: ServiceDep,
    admission: AdmissionDep,
    max_wait_s: LongPollMaxDep,
    client: ClientKeyDep,
    index: IndexQuery = None,
    wait: WaitQuery = None,
) -> Response:
    start = parse_index(index)
    wait_s = parse_wait(wait, max_wait_s)
    if wait_s and start is None:
        raise InvalidInputError("wait: needs an index")
    if not wait_s:
        messages = await service.messages(ref, start, client=client)
        return _messages(messages)
    # A held long-poll is an open connection like a stream: it counts against the same
    # per-client cap, or one client could hold any number of them.
    async with admission.long_poll(client):
        messages = await service.messages(ref, start, wait_s, client)
    return _messages(messages)


# The paths the upstream's overview page tells client developers to poll: the same reads.
@router.get(
    "/me/chat/{handle}",
    name="get_my_chat",
    **{**GET_CHAT, "summary": "GetChat (the upstream overview's path)"},
)
async def get_my_chat(ref: ChatRefDep, service: ServiceDep, client: ClientKeyDep) -> JSONResponse:
    return await get_chat(ref, service, client)


@router.get(
    "/me/chat/{handle}/messages",
    name="get_my_messages",
    **{**GET_MESSAGES, "summary": "GetMessages (the upstream overview's path)"},
)
async def get_my_messages(
    ref: ChatRefDep,
    service: ServiceDep,
    admission: AdmissionDep,
    max_wait_s: LongPollMaxDep,
    client: ClientKeyDep,
    index: IndexQuery = None,
    wait: WaitQuery = None,
) -> Response:
    return await get_messages(ref, service, admission, max_wait_s, client, index, wait)
