"""`POST /api/v2/chats/{handle}/survey`: how a chat that has ended went, for the operator.

Thin: validates the body (`SurveyBody`), applies the per-client send limit, and hands over to
`SurveyDesk` (one survey per chat, fleet-wide; delivered through the webhook outbox).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.answers import OperationResult
from app.api.bodies import COMMENT_MAX, SurveyBody
from app.api.openapi import errors
from app.edge.idempotency import admit
from app.errors import NotConfiguredError
from app.routes.deps import ChatRefDep, ClientKeyDep, SendLimitDep, SurveyDep

router = APIRouter(prefix="/api/v2", tags=["chats"])

NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/chats/{handle}/survey",
    status_code=202,
    response_model=OperationResult,
    # 409: the chat is not over yet, or has its survey already.
    # 507: the survey outbox holds its quota (BFF_SURVEY_OUTBOX_MAX, _BYTES).
    responses=errors(400, 403, 404, 409, 413, 415, 429, 503, 507),
    summary="RateChat",
    description=(
        "The customer's rating (1 to 5) of a chat that has ended, or that they completed, "
        f"with an optional comment (at most {COMMENT_MAX} characters). One per chat: a second "
        "answers 409, as does a chat still running. Accepted (202) once stored durably; "
        "delivered to the operator's signed webhook (BFF_SURVEY_WEBHOOK_URL), retried until "
        "it arrives. Without that webhook configured: 503."
    ),
)
async def rate_chat(
    ref: ChatRefDep,
    body: SurveyBody,
    desk: SurveyDep,
    limiter: SendLimitDep,
    client: ClientKeyDep,
    request: Request,
    response: Response,
) -> OperationResult:
    await limiter.hit(client)
    admit(request.scope)  # from here, an Idempotency-Key's refusal is a final answer
    if desk is None:
        raise NotConfiguredError("Surveys are not available")
    await desk.take(ref, body)
    response.headers.update(NO_STORE)
    return OperationResult()
