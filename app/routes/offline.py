"""`GET /api/v2/availability` and `POST /api/v2/offline-messages`: whether customers can chat
now, and leaving a message when they cannot.

Thin: validates input, applies the per-IP creation limit, and hands over to `OfflineDesk`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from app.api.answers import Availability, Error, OperationResult
from app.api.bodies import OfflineMessageBody
from app.edge.idempotency import admit
from app.edge.idempotency_keys import parse_key
from app.routes.deps import ClientKeyDep, CreateLimitDep, OfflineDep

router = APIRouter(prefix="/api/v2", tags=["offline"])

NO_STORE = {"Cache-Control": "no-store"}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Invalid input (statusCode 1: missing, 10: invalid)",
        403: "A browser on an origin outside BFF_ALLOWED_ORIGINS (statusCode 3)",
        413: "Body larger than the limit (statusCode 10)",
        415: "Body is not application/json (statusCode 10)",
        429: "Rate limited (statusCode 3); retry after Retry-After seconds",
        503: "The bus is unavailable (statusCode 12): see Retry-After; or leaving a message is "
        "not configured here (no Retry-After: retrying cannot help)",
        507: "Too many left messages are waiting for delivery (statusCode 13): the operator's "
        "receiver has been failing. No Retry-After: retrying soon does not help",
    }
    return {s: {"model": Error, "description": text[s]} for s in statuses}


@router.get(
    "/availability",
    response_model=Availability,
    responses=_errors(403),
    summary="Availability",
    description=(
        "Whether a chat can be started now. `reason` is `closed` outside the business hours "
        "(`nextOpen`: when the next opening starts) or `unavailable` while the chat service "
        "is failing. Show the leave-a-message form when `open` is false."
    ),
)
async def get_availability(offline: OfflineDep) -> JSONResponse:
    answer = offline.availability()
    return JSONResponse(answer.model_dump(), headers=NO_STORE)


@router.post(
    "/offline-messages",
    status_code=202,
    response_model=OperationResult,
    responses=_errors(400, 403, 413, 415, 429, 503, 507),
    summary="LeaveMessage",
    description=(
        "Leaves a message for the contact center (outside business hours, or when chatting "
        "is unavailable). Accepted (202) once stored durably; delivered to the operator's "
        "signed webhook, retried until it arrives or for BFF_OFFLINE_MAX_AGE_S. With "
        "`Idempotency-Key`, a retry of the same request is stored once. While the messages "
        "waiting for delivery fill their quota (BFF_OFFLINE_OUTBOX_MAX, "
        "BFF_OFFLINE_OUTBOX_MAX_BYTES), new ones are refused with 507."
    ),
)
async def leave_message(
    body: OfflineMessageBody,
    offline: OfflineDep,
    limiter: CreateLimitDep,
    client: ClientKeyDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> OperationResult:
    # The one parser of the header (app/edge/idempotency_keys.py): the same key, quoted or bare,
    # is the same outbox item.
    key = None if idempotency_key is None else parse_key(idempotency_key)
    await limiter.hit(client)
    admit(request.scope)
    await offline.leave(body, key)
    response.headers.update(NO_STORE)
    return OperationResult()
