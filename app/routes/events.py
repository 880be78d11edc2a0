"""`GET /api/v2/chats/{handle}/events`: the chat as a Server-Sent Events stream.

Thin: checks the resume point, has the stream admitted (`core.admission.StreamAdmission`), then
hands over to `core.sse.ChatStream`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from pydantic import WithJsonSchema
from starlette.datastructures import Headers, QueryParams
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from app.api.openapi import INDEX_SCHEMA, errors
from app.core.sse import ChatStream, EventStreamResponse
from app.events import SSE_KINDS, event_model_name
from app.routes.deps import ChatRefDep, ClientKeyDep, RuntimeDep
from app.routes.params import parse_resume_point
from app.runtime import Runtime

router = APIRouter(prefix="/api/v2", tags=["events"])

DESCRIPTION = """\
Server-Sent Events. First a `state` event, then every transcript entry after `Last-Event-ID`
(header, or `lastEventId` query parameter on the first connect) as `message` events whose
`id:` is the upstream index, then live `message`, `state`, `status` and `end` events. After
`end` the server closes the stream; reconnecting gets `end` again. Heartbeat comments keep
idle connections open. Use an SSE client (a browser's `EventSource`, or a library): it
reconnects with `Last-Event-ID` by itself.

| event | `data:` (JSON) | `id:` |
|---|---|---|
| `state` | `Chat` (state, capabilities, participants) | none |
| `message` | `Message` (any upstream type) | its index |
| `status` | `UpstreamStatusPayload`: `{"upstream": "degraded"}` or `{"upstream": "ok"}` | none |
| `end` | `EndPayload`: `{}` | none |
"""


# Each event of the stream as an object: its `event:` name, its `id:` where it has one, and
# its `data:` (JSON). The schemas are added to the components by app/api/openapi.py, so SDK
# generators make models of them; the body itself is documented as the text it is, so a
# generated client reads it as text instead of parsing a stream as one JSON document.
EVENT_FRAME_SCHEMA = {
    "oneOf": [{"$ref": f"#/components/schemas/{event_model_name(kind)}"} for kind in SSE_KINDS],
    "discriminator": {
        "propertyName": "event",
        "mapping": {
            kind.value: f"#/components/schemas/{event_model_name(kind)}" for kind in SSE_KINDS
        },
    },
}


@router.get(
    "/chats/{handle}/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        **errors(400, 403, 404, 429, 503),
        200: {
            "description": "The stream: `state`, `message`, `status` and `end` events",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "`event:`, `id:` and `data:` lines (Server-Sent Events)",
                    },
                    # OpenAPI 3.2's itemSchema, as an extension in this 3.1 document.
                    "x-itemSchema": EVENT_FRAME_SCHEMA,
                }
            },
        },
    },
    summary="Chat events (SSE)",
    description=DESCRIPTION,
)
async def chat_events(
    ref: ChatRefDep,
    # The whole runtime, unlike the other routes: a stream is made of most of it (the gate,
    # the bus, the service, the hub, the tuning), and `_Served` calls this with the one it holds.
    rt: RuntimeDep,
    client: ClientKeyDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this message index"),
        WithJsonSchema(INDEX_SCHEMA),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(alias="lastEventId", description="Resume point of the first connect"),
        WithJsonSchema(INDEX_SCHEMA),
    ] = None,
) -> EventStreamResponse:
    admission = rt.admission
    admission.refuse_if_draining()
    start = parse_resume_point(last_event_id, last_event_id_query)
    # Counted from here (this process, the chat, the client); the response gives the places
    # back when it ends, however it ends.
    held = await admission.admit_stream(ref.key, client)
    try:
        stream = ChatStream(
            ref,
            start,
            client=client,
            bus=rt.bus,
            service=rt.service,
            hub=rt.streams,
            tuning=rt.stream_tuning,
        )
        return EventStreamResponse(
            stream.frames(),
            on_disconnect=stream.disconnected,
            on_open=held.opened,
            on_close=held.release,
            send_timeout_s=rt.stream_tuning.send_timeout_s,
        )
    except BaseException:
        held.release()
        raise


# -- the same endpoint as a plain ASGI route ---------------------------------------------------

PATH = "/api/v2/chats/{handle}/events"


class _Served:
    """`chat_events` without FastAPI's per-request machinery (dependency solving, two exit
    stacks, exception wrapping: about 6 KiB), which would otherwise live as long as each
    stream, for hours. Same parsing, same order, same errors (raised to the app's one error
    mapper); the FastAPI route above stays for the OpenAPI document."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt = self.runtime
        ref = rt.service.resolve(scope["path_params"]["handle"])
        client = rt.client_address.key(scope)
        response = await chat_events(
            ref,
            rt,
            client,
            Headers(scope=scope).get("last-event-id"),
            QueryParams(scope.get("query_string", b"")).get("lastEventId"),
        )
        await response(scope, receive, send)


class StreamRoute(Route):
    """GET only (HEAD is the FastAPI route's 405), and named in the scope like an API route,
    so the access log and metrics use its template."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(PATH, _Served(runtime), methods=["GET"], include_in_schema=False)
        self.methods = {"GET"}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child = {**child, "route": self}
        return match, child
