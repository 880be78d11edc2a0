"""`GET /api/v2/chats/{handle}/events`: the chat as a Server-Sent Events stream.

Thin: checks the resume point and the stream limits, then hands over to `sse.ChatStream`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from app.errors import InvalidInputError, UpstreamUnavailableError
from app.routes.chats import ERRORS
from app.routes.deps import ChatRefDep, ClientIpDep, RuntimeDep
from app.sse import ChatStream, EventStreamResponse

router = APIRouter(prefix="/api/v2", tags=["events"])

DESCRIPTION = """\
Server-Sent Events. First a `state` event (state, capabilities, participants), then every
transcript entry after `Last-Event-ID` (header, or `lastEventId` query parameter on the first
connect) as `message` events whose `id:` is the upstream index, then live `message`, `state`,
`status` (`{"upstream": "degraded"|"ok"}`) and `end` events. After `end` the server closes the
stream; reconnecting gets `end` again. Heartbeat comments keep idle connections open.
"""


def _resume_point(header: str | None, query: str | None) -> int:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInputError("Last-Event-ID: must be a message index")
    return int(raw)


@router.get(
    "/chats/{handle}/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "The stream"}},
    summary="Chat events (SSE)",
    description=DESCRIPTION,
)
async def chat_events(
    ref: ChatRefDep,
    rt: RuntimeDep,
    ip: ClientIpDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId")] = None,
) -> EventStreamResponse:
    if rt.draining.is_set():
        raise UpstreamUnavailableError("This instance is shutting down", retry_after_s=1)
    start = _resume_point(last_event_id, last_event_id_query)
    rt.stream_capacity.check()
    rt.stream_limits_ip.check(ip)
    rt.stream_limits_chat.check(ref.key)
    stream = ChatStream(
        ref, start, bus=rt.bus, service=rt.service, hub=rt.streams, tuning=rt.stream_tuning
    )

    def opened() -> None:
        rt.metrics.sse_streams.inc()
        rt.stream_capacity.enter()
        rt.stream_limits_ip.enter(ip)
        rt.stream_limits_chat.enter(ref.key)

    def closed() -> None:
        rt.metrics.sse_streams.dec()
        rt.stream_capacity.leave()
        rt.stream_limits_ip.leave(ip)
        rt.stream_limits_chat.leave(ref.key)

    return EventStreamResponse(
        stream.frames(),
        on_disconnect=stream.disconnected,
        on_open=opened,
        on_close=closed,
        send_timeout_s=rt.stream_tuning.send_timeout_s,
    )
