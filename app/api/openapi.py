"""The OpenAPI document: readable operation ids, the errors each route really answers, the
Server-Sent Event payloads, and the bounds that depend on settings.

Owns what `/openapi.json` says beyond what the route declarations already carry. It must not
change behaviour: every statement here describes something a test can observe.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from app.api.answers import SSE_EVENT_MODELS, Error

_ERROR_TEXT = {
    400: "Invalid input (statusCode 1: missing, 10: invalid)",
    403: "A browser on an origin outside BFF_ALLOWED_ORIGINS (statusCode 3)",
    404: "Unknown, tampered or foreign chat handle (statusCode 6)",
    409: "Operation not valid in the chat's current state (statusCode 2)",
    413: "Body larger than the limit (statusCode 10)",
    415: "Body is not application/json (statusCode 10)",
    429: "Rate limited (statusCode 3); retry after Retry-After seconds",
    502: "The chat service answered unexpectedly (statusCode 4)",
    503: "The chat service or the bus is unavailable (statusCode 12); retry after Retry-After",
    504: "The chat service timed out (statusCode 12)",
    507: "Too many of these are waiting for delivery to the operator's webhook (statusCode "
    "13): its receiver has been failing. No Retry-After: retrying soon does not help",
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}

# Bounds of the numeric query parameters, as the routes parse them (digits only, at most 9).
INDEX_MAX = 999_999_999
INDEX_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": INDEX_MAX}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Error, "description": _ERROR_TEXT[status]}
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


def operation_id(route: APIRoute) -> str:
    """`request_chat` -> `requestChat`: the route's name (its function's, unless given)."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def install_openapi(app: FastAPI, *, long_poll_max_s: float) -> None:
    """Build the document once, on first request, from the routes plus what they cannot say."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _finish(schema, long_poll_max_s)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _finish(schema: dict[str, Any], long_poll_max_s: float) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            # Validation errors answer 400 in the upstream's shape (errors.py), never 422.
            responses.pop("422", None)
            for status, response in responses.items():
                # errors.error_response sends Retry-After on every 429 and 503, whichever
                # route raised it.
                if status in ("429", "503"):
                    response.setdefault("headers", {}).setdefault(
                        "Retry-After", RETRY_AFTER["Retry-After"]
                    )
                content = response.get("content", {})
                # Errors are JSON even where the success is a stream.
                if int(status) >= 400 and "application/json" not in content:
                    response["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "wait" and parameter["in"] == "query":
                    parameter["schema"]["maximum"] = long_poll_max_s
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    _, definitions = models_json_schema(
        [(model, "serialization") for model in SSE_EVENT_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    for name, definition in definitions.get("$defs", {}).items():
        components.setdefault(name, definition)
