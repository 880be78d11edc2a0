"""The simulated upstream HTTP surface: the customer operations of Customer Chat API v2 under
/api/v2 (RequestChat, GetChat, GetMessages, SendMessage, typing notifications, Complete),
answered in the documented shapes and with the documented field variations.

It must not count, log, fault or check headers (gate.py does, in front of it) and must not
keep state of its own: everything lives in the `Emulator`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.emulator.core import Emulator
from app.emulator.faults import CannedResponse, html_error, json_error, plain_text
from app.emulator.gate import SEQ_SCOPE_KEY, UPSTREAM_PREFIX
from app.emulator.recording import classify
from app.emulator.state import COOKIE_NAME, OPERATIONS, Chat

OK: dict[str, Any] = {"statusCode": 0}
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def to_response(canned: CannedResponse) -> Response:
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in canned.headers
        if name != b"content-length"
    }
    return Response(canned.body, canned.status, headers=headers)


def crash(detail: str) -> Response:
    """How the upstream answers malformed input: a server error page, not a statusCode."""
    return to_response(html_error(500, "Internal Server Error", detail))


def not_found(chat_id: str) -> Response:
    """Field variation: an unknown chat id is a plain-text 400, not a 404 with a statusCode."""
    return to_response(plain_text(400, f"Chat not found {chat_id}"))


def invalid_state() -> Response:
    return to_response(json_error(400, 2, "Operation is not valid in the current chat state"))


def parse_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in a request body, or None when the body is not one."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def non_empty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def flat_strings(value: object) -> dict[str, str] | None:
    """userData: a flat object of string keys and values (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return {str(k): v for k, v in value.items()}


def upstream_router(emulator: Emulator) -> APIRouter:
    """The /api/v2 routes, bound to one emulator."""
    router = APIRouter(prefix=UPSTREAM_PREFIX)

    def find(chat_id: str) -> Chat | None:
        return emulator.chats.get(chat_id)

    @router.post("/chats")
    async def request_chat(request: Request) -> Response:
        payload = parse_object(await request.body())
        if payload is None:
            return crash("JSONException: request body is not a JSON object")
        if payload.get("operationName") != "RequestChat":
            return crash("UnsupportedOperationException: operationName")
        nickname = non_empty_str(payload.get("nickname"))
        subject = non_empty_str(payload.get("subject"))
        user_data = flat_strings(payload.get("userData"))
        endpoint = payload.get("endpoint")
        if nickname is None or subject is None:
            return crash("java.lang.NullPointerException: nickname/subject")
        if user_data is None or not (endpoint is None or isinstance(endpoint, str)):
            return crash("ClassCastException: userData/endpoint")
        chat = emulator.create_chat(nickname, subject, endpoint, user_data)
        seq = request.scope.get(SEQ_SCOPE_KEY)
        if isinstance(seq, int):
            emulator.log.attach_chat(seq, chat.id)
        path = f"{UPSTREAM_PREFIX}/chats/{chat.id}"
        response = JSONResponse({"id": chat.id, "statusCode": 0, "path": path})
        if chat.cookie is not None:
            response.headers.append("set-cookie", f"{COOKIE_NAME}={chat.cookie}; Path=/; HttpOnly")
        return response

    @router.get("/chats/{chat_id}")
    async def get_chat(chat_id: str) -> Response:
        chat = find(chat_id)
        if chat is None:
            return not_found(chat_id)
        return JSONResponse(chat.render_chat())

    @router.get("/chats/{chat_id}/messages")
    async def get_messages(chat_id: str, request: Request) -> Response:
        chat = find(chat_id)
        if chat is None:
            return not_found(chat_id)
        raw_index = request.query_params.get("index")
        if raw_index is None:
            return JSONResponse(chat.render_messages(chat.take_unread()))
        try:
            index = int(raw_index)
        except ValueError:
            return crash(f"NumberFormatException: For input string: {raw_index!r}")
        # Field variation: index=0 is documented as "everything" but answers an empty list.
        messages = [] if index == 0 else chat.messages_from(index)
        return JSONResponse(chat.render_messages(messages))

    @router.post("/chats/{chat_id}")
    async def chat_operation(chat_id: str, request: Request) -> Response:
        chat = find(chat_id)
        if chat is None:
            return not_found(chat_id)
        payload = parse_object(await request.body())
        if payload is None:
            return crash("JSONException: request body is not a JSON object")
        operation = payload.get("operationName")
        if operation not in OPERATIONS:
            return crash(f"UnsupportedOperationException: {operation!r}")
        text = payload.get("text")
        if operation == "SendMessage" and non_empty_str(text) is None:
            return crash("java.lang.NullPointerException: text")
        if not chat.live:
            return invalid_state()
        if operation == "SendMessage":
            assert isinstance(text, str)
            emulator.customer_text(chat, text)
        elif operation == "SendStartTypingNotification":
            chat.customer_typing(True)
        elif operation == "SendStopTypingNotification":
            chat.customer_typing(False)
        else:
            emulator.complete(chat)
        return JSONResponse(OK)

    @router.api_route("/{rest:path}", methods=_ALL_METHODS, include_in_schema=False)
    async def fallback(request: Request) -> Response:
        route, _ = classify(request.method, request.url.path)
        if route.endswith(" other"):
            return to_response(plain_text(404, "Not Found"))
        return to_response(plain_text(405, "Method Not Allowed"))

    return router
