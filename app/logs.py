"""Process logging: one format for chat-bff's lines and uvicorn's, JSON lines by default, text
for people at a terminal (`BFF_LOG_FORMAT=text`).

Owns the root handler, the request scope whose id every line logged during a request carries,
and the request-id rule (a client's `X-Request-ID` when it is a sane token, otherwise a new
one). It must not log a raw path, a handle, an upstream id or a secret: callers pass route
templates and fixed words.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# Loggers whose every line would carry an upstream URL (with upstream chat ids) or noise.
_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING}
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Printable token characters only: the id is echoed in a response header and written to logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass(slots=True)
class RequestScope:
    """One request's logging context. Tasks started during a request inherit it (asyncio
    copies context variables into them); `open` turns False when the request ends, so a
    poller started by a request does not carry that request's id for the rest of its life."""

    request_id: str
    open: bool = True


current_request: ContextVar[RequestScope | None] = ContextVar("current_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's id when it is a sane token (so traces join up across services), else new."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)


class _RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_request.get()
        if scope is not None and scope.open and not hasattr(record, "request_id"):
            record.request_id = scope.request_id
        return True


class _TextFormatter(logging.Formatter):
    """`time level logger message [request id]`: extras stay in the JSON format."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # uvicorn repeats each message with terminal colour codes in `color_message`.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger, uvicorn's included, through one handler in one format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _UVICORN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a structured line; None values are left out."""
    return {k: v for k, v in values.items() if v is not None}
