"""Request-scoped access to what `create_app` wired, as FastAPI dependencies.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.models import ChatRef
from app.security import HANDLE_PATTERN
from app.service import ChatService
from app.wiring import Runtime


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


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
    service: ChatService = request.app.state.runtime.service
    return service.resolve(handle)


ChatRefDep = Annotated[ChatRef, Depends(chat_ref)]


async def client_key(request: Request) -> str:
    """The client every per-client limit counts this request under (IPv6 by prefix)."""
    rt: Runtime = request.app.state.runtime
    return rt.client_address.key(request.scope)


ClientKeyDep = Annotated[str, Depends(client_key)]
