"""One exception tree and the one place that maps it to HTTP.

    BffError                          500  (never raised on purpose)
    +-- ClientError
    |   +-- InvalidInputError         400  statusCode 1 (missing) / 10 (invalid)
    |   +-- OriginNotAllowedError     403  statusCode 3
    |   +-- ChatNotFoundError         404  statusCode 6
    |   +-- InvalidStateError         409  statusCode 2
    |   +-- PayloadTooLargeError      413  statusCode 10
    |   +-- UnsupportedMediaTypeError 415  statusCode 10
    |   +-- RateLimitedError          429  statusCode 3, Retry-After
    +-- UpstreamError
    |   +-- UpstreamBadResponseError  502  statusCode 4
    |   +-- UpstreamUnavailableError  503  statusCode 12, Retry-After
    |   +-- UpstreamTimeoutError      504  statusCode 12
    +-- BusUnavailableError           503  statusCode 12, Retry-After
    +-- NotConfiguredError            503  statusCode 12 (a feature the operator left off: no
    |                                      Retry-After, retrying cannot help)
    +-- OutboxFullError               507  statusCode 13 (a kind of webhook delivery at its quota)
    +-- OverloadedError               503  statusCode 12, Retry-After (this instance is full)

Messages are ours and generic: nothing the upstream said, and no secret, reaches a client.
FastAPI's handlers that answer with `error_response` are `app/edge/error_handlers.py`; this
module imports no other of ours, so every package can raise these.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class BffError(Exception):
    """`retry_after_s` is what the upstream asked for (the poller honours it); clients get a
    Retry-After on every 429/503 even when it is None, unless the error is not `retryable`."""

    http_status = 500
    status_code = 4
    default_message = "Internal error"
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after_s: int | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.retry_after_s = retry_after_s


class ClientError(BffError):
    http_status = 400
    status_code = 10


class InvalidInputError(ClientError):
    default_message = "Invalid request"

    def __init__(self, message: str | None = None, *, missing: bool = False) -> None:
        super().__init__(message)
        if missing:
            self.status_code = 1


class OriginNotAllowedError(ClientError):
    http_status = 403
    status_code = 3
    default_message = "Origin not allowed"


class ChatNotFoundError(ClientError):
    http_status = 404
    status_code = 6
    default_message = "Chat not found"


class InvalidStateError(ClientError):
    http_status = 409
    status_code = 2
    default_message = "Operation not valid in the current state of the chat"


class PayloadTooLargeError(ClientError):
    http_status = 413
    default_message = "Request body too large"


class UnsupportedMediaTypeError(ClientError):
    http_status = 415
    default_message = "Content-Type must be application/json"


class RateLimitedError(ClientError):
    http_status = 429
    status_code = 3
    default_message = "Too many requests"


class UpstreamError(BffError):
    http_status = 502
    status_code = 4


class UpstreamBadResponseError(UpstreamError):
    default_message = "The chat service answered unexpectedly"


class UpstreamUnavailableError(UpstreamError):
    http_status = 503
    status_code = 12
    default_message = "The chat service is unavailable, retry later"


class UpstreamTimeoutError(UpstreamError):
    http_status = 504
    status_code = 12
    default_message = "The chat service did not answer in time"


class BusUnavailableError(BffError):
    http_status = 503
    status_code = 12
    default_message = "Service temporarily unavailable, retry later"


class NotConfiguredError(BffError):
    """A feature this deployment has not turned on (a webhook left unset): 503 like any
    unavailable service, but without Retry-After, which would invite retries that cannot
    succeed until the operator configures it."""

    http_status = 503
    status_code = 12
    default_message = "Not available on this server"
    retryable = False


class OutboxFullError(BffError):
    """One kind of webhook delivery holds its quota (`limit`: "items" or "bytes") in the
    outbox: its receiver has been failing for a while. Retrying soon does not help (no
    Retry-After): room comes back when deliveries succeed or old ones are dead-lettered."""

    http_status = 507
    status_code = 13
    default_message = "Too many messages are waiting for delivery; try again later"

    def __init__(self, kind: str = "", limit: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.limit = limit


class OverloadedError(BffError):
    """This instance holds as many streams as it may (`BFF_MAX_STREAMS`); another may not."""

    http_status = 503
    status_code = 12
    default_message = "This server is busy, retry later"


def error_body(status_code: int, message: str) -> dict[str, Any]:
    return {"statusCode": status_code, "statusMessage": message}


def error_response(error: BffError) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    retry_after = error.retry_after_s
    if retry_after is None and error.retryable and error.http_status in (429, 503):
        retry_after = 2
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(
        error_body(error.status_code, error.message), status_code=error.http_status, headers=headers
    )


# -- describing failures in logs ------------------------------------------------------------


def describe_exception(error: BaseException) -> str:
    """An unexpected exception for a log line: its type and where it was raised (innermost
    frame), never its message, which may quote what the upstream or a client sent."""
    frame = None
    trace = error.__traceback__
    while trace is not None:
        frame, trace = trace, trace.tb_next
    if frame is None:
        return type(error).__name__
    code = frame.tb_frame.f_code
    where = code.co_filename.rsplit("/app/", 1)[-1].rsplit("/site-packages/", 1)[-1]
    return f"{type(error).__name__} at {where}:{frame.tb_lineno} in {code.co_name}"
