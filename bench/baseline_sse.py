"""The baseline for idle streams: a bare sse-starlette endpoint, served by uvicorn like
`chat-bff serve` (same uvicorn settings, access log included), with nothing behind it.

`GET /events` sends one `state` event, then only heartbeat comments every `--heartbeat` s.

`--mode asgi` is a reference point, not the baseline: the same stream as a plain ASGI
response, one task per connection (the server's own), heartbeats written by one process-wide
loop; what a stream costs on this stack without sse-starlette's per-connection tasks.

Run: `python -m bench.baseline_sse --port N [--heartbeat 15] [--mode sse-starlette|asgi]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def create_app(heartbeat_s: float) -> Starlette:
    async def events(request: Request) -> EventSourceResponse:
        async def stream() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent('{"state":"Chatting"}', event="state")
            await asyncio.Event().wait()  # idle until the client goes away

        return EventSourceResponse(stream(), ping=int(heartbeat_s))

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/events", events), Route("/healthz", healthz)])


STATE = b'event: state\r\ndata: {"state":"Chatting"}\r\n\r\n'
PING = b": ping\r\n\r\n"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def create_asgi_app(heartbeat_s: float) -> Callable[..., Awaitable[None]]:
    streams: set[Send] = set()
    beating: list[asyncio.Task[None]] = []

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(heartbeat_s)
            for send in list(streams):
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": PING, "more_body": True})

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                beating.append(asyncio.create_task(heartbeat()))
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] != "/events":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": STATE, "more_body": True})
        streams.add(send)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            streams.discard(send)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.baseline_sse")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--mode", choices=["sse-starlette", "asgi"], default="sse-starlette")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # The same uvicorn settings as app/cli.py's `serve`.
    app = create_app(args.heartbeat) if args.mode == "sse-starlette" else None
    uvicorn.run(
        app or create_asgi_app(args.heartbeat),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_keep_alive=75,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
