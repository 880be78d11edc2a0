"""`GET /api/v2/chats/{handle}/events`: the chat as a Server-Sent Events stream.

Thin: checks the resume point and the stream limits, then hands over to `sse.ChatStream`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from app.errors import UpstreamUnavailableError
from app.routes.chats import ERRORS
from app.routes.deps import ChatRefDep, ClientIpDep, RuntimeDep
from app.routes.params import RESUME_PATTERN, parse_resume_point
from app.sse import ChatStream, EventStreamResponse

router = APIRouter(prefix="/api/v2", tags=["events"])

DESCRIPTION = """\
Server-Sent Events. First a `state` event (state, capabilities, participants), then every
transcript entry after `Last-Event-ID` (header, or `lastEventId` query parameter on the first
connect) as `message` events whose `id:` is the upstream index, then live `message`, `state`,
`status` (`{"upstream": "degraded"|"ok"}`) and `end` events. After `end` the server closes the
stream; reconnecting gets `end` again. Heartbeat comments keep idle connections open.
"""


# One event of the stream (in OpenAPI 3.1 the schema of a text/event-stream is its events').
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["state", "message", "status", "end"]},
        "data": {"type": "string", "description": "JSON"},
        "id": {"type": "string", "pattern": "^[0-9]{1,9}$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


@router.get(
    "/chats/{handle}/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        # Errors are JSON: without saying so, they would be documented as the stream's type.
        **{
            status: {
                "description": doc["description"],
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
                },
            }
            for status, doc in ERRORS.items()
        },
        200: {
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
            "description": "The stream",
        },
    },
    summary="Chat events (SSE)",
    description=DESCRIPTION,
)
async def chat_events(
    ref: ChatRefDep,
    rt: RuntimeDep,
    ip: ClientIpDep,
    # A header is text or absent, never null: documented as a string defaulting to "".
    last_event_id: Annotated[
        str, Header(alias="Last-Event-ID", json_schema_extra={"pattern": RESUME_PATTERN})
    ] = "",
    last_event_id_query: Annotated[
        str | None, Query(alias="lastEventId", json_schema_extra={"pattern": RESUME_PATTERN})
    ] = None,
) -> EventStreamResponse:
    if rt.draining.is_set():
        raise UpstreamUnavailableError("This instance is shutting down", retry_after_s=1)
    start = parse_resume_point(last_event_id or None, last_event_id_query)
    rt.stream_limits_ip.check(ip)
    rt.stream_limits_chat.check(ref.key)
    stream = ChatStream(
        ref, start, bus=rt.bus, service=rt.service, hub=rt.streams, tuning=rt.stream_tuning
    )

    def opened() -> None:
        rt.metrics.sse_streams.inc()
        rt.stream_limits_ip.enter(ip)
        rt.stream_limits_chat.enter(ref.key)

    def closed() -> None:
        rt.metrics.sse_streams.dec()
        rt.stream_limits_ip.leave(ip)
        rt.stream_limits_chat.leave(ref.key)

    return EventStreamResponse(
        stream.frames(),
        on_disconnect=stream.disconnected,
        on_open=opened,
        on_close=closed,
        send_timeout_s=rt.stream_tuning.send_timeout_s,
    )
