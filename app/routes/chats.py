"""The upstream-compatible REST routes: RequestChat, chat operations, chat and message reads.

Thin: validates input (via `schemas`), applies per-IP limits, calls `ChatService`, and shapes
answers exactly like the upstream's, with the handle wherever an id appears.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from app.errors import InvalidInputError
from app.routes.deps import ChatRefDep, ClientIpDep, RuntimeDep
from app.schemas import (
    ChatCreatedOut,
    ChatOperationBody,
    ChatResourceOut,
    ErrorOut,
    MessagesOut,
    RequestChatBody,
    SendMessageBody,
    StatusOut,
)
from app.service import chat_json

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in {
        400: "Invalid input (statusCode 1: missing, 10: invalid)",
        403: "Origin not allowed",
        404: "Unknown, tampered or foreign chat handle",
        409: "Operation not valid in the chat's current state",
        413: "Body too large",
        415: "Body is not JSON",
        429: "Rate limited; see Retry-After",
        502: "The chat service answered unexpectedly",
        503: "The chat service or the bus is unavailable; see Retry-After",
        504: "The chat service timed out",
    }.items()
}

router = APIRouter(prefix="/api/v2", tags=["chats"])

NO_STORE = {"Cache-Control": "no-store"}


@router.post("/chats", response_model=ChatCreatedOut, responses=ERRORS, summary="RequestChat")
async def request_chat(
    body: RequestChatBody, rt: RuntimeDep, ip: ClientIpDep, response: Response
) -> ChatCreatedOut:
    rt.offline.require_open()
    rt.create_limiter.hit(ip)
    ref = await rt.service.create(
        body.nickname,
        body.subject,
        endpoint=body.endpoint,
        user_data=body.userData,
        push_token=body.pushToken,
    )
    response.headers.update(NO_STORE)
    return ChatCreatedOut(id=ref.handle, path=f"/api/v2/chats/{ref.handle}")


@router.post(
    "/chats/{handle}",
    response_model=StatusOut,
    responses=ERRORS,
    summary="SendMessage, SendStartTypingNotification, SendStopTypingNotification, Complete",
)
async def operate(
    ref: ChatRefDep,
    body: Annotated[ChatOperationBody, Body()],
    rt: RuntimeDep,
    ip: ClientIpDep,
    response: Response,
) -> StatusOut:
    rt.send_limiter.hit(ip)
    text = body.text if isinstance(body, SendMessageBody) else None
    await rt.service.operate(ref, body.operationName, text)
    response.headers.update(NO_STORE)
    return StatusOut()


def _answer(payload: dict[str, Any]) -> JSONResponse:
    # Reads answer JSONResponse directly: the response models document the shape, but
    # validating every cached read against them again would cost more than the read itself.
    return JSONResponse(payload, headers=NO_STORE)


@router.get("/chats/{handle}", response_model=ChatResourceOut, responses=ERRORS, summary="GetChat")
async def get_chat(ref: ChatRefDep, rt: RuntimeDep) -> JSONResponse:
    state = await rt.service.chat(ref)
    return _answer({"chat": chat_json(ref.handle, state), "statusCode": 0})


@router.get(
    "/chats/{handle}/messages",
    response_model=MessagesOut,
    responses=ERRORS,
    summary="GetMessages",
    description=(
        "Served from the shared cache. With `index`: messages with index >= index; add "
        "`wait` (seconds, long-poll) to hold the request until one exists or `wait` passes. "
        "Without `index`: the messages this chat's index-less readers were not given yet."
    ),
)
async def get_messages(
    ref: ChatRefDep,
    rt: RuntimeDep,
    index: Annotated[
        str | None,
        Query(description="Messages with index >= this; 0 or 1 means the whole transcript"),
    ] = None,
    wait: Annotated[
        str | None, Query(description="Long-poll: seconds to wait for a message (<= 30)")
    ] = None,
) -> JSONResponse:
    start = _index(index)
    wait_s = _wait(wait, rt.long_poll_max_s)
    if wait_s and start is None:
        raise InvalidInputError("wait: needs an index")
    messages = await rt.service.messages(ref, start, wait_s)
    return _answer({"messages": [m.body for m in messages], "statusCode": 0})


def _index(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInputError("index: must be a non-negative integer")
    return int(raw)


def _wait(raw: str | None, limit: float) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError("wait: must be a number of seconds") from None
    if not 0 <= value <= limit:
        raise InvalidInputError(f"wait: must be between 0 and {limit:g}")
    return value
