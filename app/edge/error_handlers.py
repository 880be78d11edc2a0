"""FastAPI's exception handlers: every failure a request meets answered in the error tree's
shape (`app.errors.error_response`, the one mapper).

Owns turning what a route or FastAPI raises into that answer: our errors as they are,
validation errors in our words (statusCode 1 or 10), routing's 404 and 405 (with `Allow`,
for every route at the path), anything unexpected as a logged 500. It must not echo a
client's input or an exception's message, nor log a raw path (a path holds the handle).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.edge.paths import allowed_methods
from app.errors import BffError, InvalidInputError, error_body, error_response

# The logger these lines always had (operators filter on it).
log = logging.getLogger("chat_bff.errors")


def _describe_validation(exc: RequestValidationError) -> InvalidInputError:
    errors = exc.errors()
    if not errors:
        return InvalidInputError()
    first = errors[0]
    kind = first.get("type")
    if kind == "json_invalid":
        return InvalidInputError("Body is not valid JSON")
    if kind == "union_tag_not_found":
        return InvalidInputError("operationName: is required", missing=True)
    if kind == "union_tag_invalid":
        return InvalidInputError("operationName: unknown operation")
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    # Discriminated unions put the tag name into the location; it says nothing to a client.
    loc = [p for p in loc if p not in ("SendMessage", "RequestChat", "function-after[]")]
    where = ".".join(loc) or "body"
    missing = first.get("type") == "missing"
    message = f"{where}: is required" if missing else f"{where}: {first.get('msg', 'invalid')}"
    return InvalidInputError(message[:300], missing=missing)


def _route(request: Request) -> str:
    # The route template, never the path: a path holds the chat handle, a bearer credential.
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


def install_error_handlers(app: FastAPI) -> None:
    async def on_bff_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BffError)
        if exc.http_status >= 500:
            log.warning("%s %s -> %s: %s", request.method, _route(request), exc.http_status, exc)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = {404: 6, 405: 3}.get(status, 10 if status < 500 else 4)
        message = {404: "Not found", 405: "Method not allowed"}.get(status, "Request failed")
        headers = dict(exc.headers or {})
        allowed = allowed_methods(request.app, request.scope) if status == 405 else []
        if allowed:  # RFC 9110: a 405 says what is allowed, for every route at this path
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, _route(request))
        return error_response(BffError())

    app.add_exception_handler(BffError, on_bff_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
