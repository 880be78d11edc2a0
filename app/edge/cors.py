"""Cross-origin answers for browsers: preflights, CORS headers, and the 403 for foreign origins.

Owns the origin policy (`OriginPolicy`) and what a browser on another origin is told, for
every path. An allowed origin may send any request header it likes (none is forwarded
upstream). One listed by name (or our own host) may send credentials: chat-bff sets no cookie
and trusts none, so allowing them grants nothing, and the origin is echoed, as browsers
require. An origin allowed only by `*` is
answered `*` without credentials: a wildcard must not vouch for any page's credentials. The
`null` origin is never allowed. A foreign origin gets a JSON 403 in the upstream's error shape
on every preflight and on every API request.
Pure ASGI, so streams pass through unbuffered. It must not look at bodies or chat handles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import OriginNotAllowedError, error_body, error_response

METHODS = ("GET", "POST")
# Browsers cap it (Chromium: 2 h, Firefox: 24 h); the allow-list rarely changes faster.
MAX_AGE_S = 7200
# Response headers a page's script may read besides the CORS-safelisted ones.
EXPOSE = ("Retry-After", "X-Request-ID")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def requested_headers(value: str | None) -> str:
    """The header names a preflight asked for, as one list to allow: each well-formed name
    (an HTTP token), lower-cased, once. Anything else in the list is dropped."""
    if not value:
        return ""
    names: dict[str, None] = {}
    for part in value.split(","):
        name = part.strip().lower()
        if _TOKEN.match(name):
            names[name] = None
    return ", ".join(names)


def _add_vary(headers: MutableHeaders, *names: str) -> None:
    present = {v.strip().lower() for v in headers.get("vary", "").split(",") if v.strip()}
    for name in names:
        if name.lower() not in present:
            headers.add_vary_header(name)


class CrossOrigin:
    """Answers preflights itself and adds the CORS headers to every answer for an allowed
    origin. `Vary: Origin` is on every answer, so a shared cache never hands one origin's
    answer to another."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: OriginPolicy,
        api_prefix: str = "/api/",
        max_age_s: int = MAX_AGE_S,
    ) -> None:
        self.app = app
        self.origins = origins
        self.api_prefix = api_prefix
        self.max_age_s = max_age_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        host = headers.get("host")
        allowed = origin is not None and self.origins.allows(origin, host)
        # What Access-Control-Allow-Origin says: the origin, with credentials, or `*`.
        answered = None
        if allowed and origin is not None:
            answered = origin if self.origins.credentialed(origin, host) else "*"
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = self._preflight(answered, headers)
            await response(scope, receive, send)
            return
        if origin is not None and not allowed and scope["path"].startswith(self.api_prefix):
            refused = error_response(OriginNotAllowedError())
            _add_vary(refused.headers, "Origin")
            await refused(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                _add_vary(out, "Origin")
                if answered is not None:
                    _allow(out, answered)
                    out["Access-Control-Expose-Headers"] = ", ".join(EXPOSE)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, answered: str | None, headers: Headers) -> Response:
        vary = ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
        if answered is None:
            refused = error_response(OriginNotAllowedError())
            _add_vary(refused.headers, *vary)
            return refused
        method = headers["access-control-request-method"]
        if method not in METHODS:
            answer: Response = JSONResponse(
                error_body(3, "Method not allowed"),
                status_code=405,
                headers={"Allow": ", ".join(METHODS)},
            )
        else:
            answer = Response(status_code=204)
            allow_headers = requested_headers(headers.get("access-control-request-headers"))
            if allow_headers:
                answer.headers["Access-Control-Allow-Headers"] = allow_headers
            answer.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
            answer.headers["Access-Control-Max-Age"] = str(self.max_age_s)
        _allow(answer.headers, answered)
        _add_vary(answer.headers, *vary)
        return answer


def _allow(headers: MutableHeaders, answered: str) -> None:
    headers["Access-Control-Allow-Origin"] = answered
    if answered != "*":
        headers["Access-Control-Allow-Credentials"] = "true"


class OriginPolicy:
    """Browsers may call us from the allow-listed origins, or from our own origin; with `*`
    from any origin, without credentials. The `null` origin (sandboxed frames, `file:`
    pages, data URLs: anyone can make one) is never allowed, whatever the list says.

    Requests without an Origin header (mobile apps, servers, same-origin GETs) are allowed: the
    policy guards against other sites driving a visitor's browser, not against direct clients.
    """

    def __init__(self, allowed: Sequence[str]) -> None:
        self._any = "*" in allowed
        self._allowed = frozenset(o for o in allowed if o != "*" and not _is_null(o))

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        if _is_null(origin):
            return False
        return self._any or self.credentialed(origin, host)

    def credentialed(self, origin: str, host: str | None) -> bool:
        """Listed by name, or our own: answered with the origin and credentials. An origin
        allowed only by `*` gets `*` and no credentials (the CORS rule for a wildcard)."""
        origin = origin.rstrip("/")
        if _is_null(origin):
            return False
        if origin in self._allowed:
            return True
        return host is not None and urlsplit(origin).netloc == host

    def check(self, origin: str | None, host: str | None) -> None:
        if not self.allows(origin, host):
            raise OriginNotAllowedError()


def _is_null(origin: str) -> bool:
    # As browsers send it ("null"), and any spelling of it a client may try.
    return origin.strip(" \t/").lower() == "null"
