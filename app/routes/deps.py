"""Request-scoped access to what `create_app` wired, as FastAPI dependencies.

Each route asks for the parts it uses, not the whole `Runtime`: its signature says what it
touches. All `async def`: FastAPI runs a plain `def` dependency in a worker thread on every
request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.core.admission import StreamAdmission
from app.core.handles import HANDLE_PATTERN
from app.core.service import ChatService
from app.edge.limits import RateLimiter
from app.models import ChatRef
from app.outbox.offline import OfflineDesk
from app.outbox.survey import SurveyDesk
from app.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def runtime(request: Request) -> Runtime:
    return _runtime(request)


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def chat_ref(
    request: Request,
    handle: Annotated[
        str,
        Path(
            description="The chat handle returned by RequestChat",
            json_schema_extra={"pattern": HANDLE_PATTERN},
        ),
    ],
) -> ChatRef:
    return _runtime(request).service.resolve(handle)


ChatRefDep = Annotated[ChatRef, Depends(chat_ref)]


async def client_key(request: Request) -> str:
    """The client every per-client limit counts this request under (IPv6 by prefix)."""
    return _runtime(request).client_address.key(request.scope)


ClientKeyDep = Annotated[str, Depends(client_key)]


async def service(request: Request) -> ChatService:
    return _runtime(request).service


ServiceDep = Annotated[ChatService, Depends(service)]


async def create_limiter(request: Request) -> RateLimiter:
    """Chat creations and left messages per client (`BFF_CHAT_CREATE_*`)."""
    return _runtime(request).create_limiter


CreateLimitDep = Annotated[RateLimiter, Depends(create_limiter)]


async def send_limiter(request: Request) -> RateLimiter:
    """Chat operations and surveys per client (`BFF_SEND_*`)."""
    return _runtime(request).send_limiter


SendLimitDep = Annotated[RateLimiter, Depends(send_limiter)]


async def admission(request: Request) -> StreamAdmission:
    return _runtime(request).admission


AdmissionDep = Annotated[StreamAdmission, Depends(admission)]


async def long_poll_max_s(request: Request) -> float:
    """The longest `wait` of a long-poll (`BFF_LONG_POLL_MAX_S`)."""
    return _runtime(request).long_poll_max_s


LongPollMaxDep = Annotated[float, Depends(long_poll_max_s)]


async def offline_desk(request: Request) -> OfflineDesk:
    return _runtime(request).offline


OfflineDep = Annotated[OfflineDesk, Depends(offline_desk)]


async def survey_desk(request: Request) -> SurveyDesk | None:
    """None when no survey webhook is configured."""
    return _runtime(request).survey


SurveyDep = Annotated[SurveyDesk | None, Depends(survey_desk)]
