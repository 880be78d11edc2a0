"""Cross-origin rules and path normalisation: the pure parts by table, and the middleware
stack of a real `create_app()` fuzzed with whatever Origin, method and request headers a
browser (or anyone pretending to be one) may send."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app.config.settings import Settings
from app.edge.cors import OriginPolicy, requested_headers
from app.edge.paths import without_trailing_slash
from app.main import create_app

ALLOWED = ["https://shop.example", "http://127.0.0.1:8080"]


@pytest.mark.parametrize(
    ("asked", "allowed"),
    [
        (None, ""),
        ("", ""),
        ("X-Api-Key", "x-api-key"),
        ("content-type, X-Api-Key ,Idempotency-Key", "content-type, x-api-key, idempotency-key"),
        ("x-a, X-A, x-a", "x-a"),  # each once
        ("x-ok, bad header, x-fine", "x-ok, x-fine"),  # not a token: dropped
        ("x-ok,,  ,", "x-ok"),
        ("x-ü, x-ok", "x-ok"),
    ],
)
def test_requested_headers(asked: str | None, allowed: str) -> None:
    assert requested_headers(asked) == allowed


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/", "/"),
        ("//", "/"),
        ("/api/v2/chats", "/api/v2/chats"),
        ("/api/v2/chats/", "/api/v2/chats"),
        ("/api/v2/chats//", "/api/v2/chats"),
        ("/docs/", "/docs"),
    ],
)
def test_without_trailing_slash(path: str, routed: str) -> None:
    assert without_trailing_slash(path) == routed


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "verdict"),
    [
        # (allowed?, with credentials?): credentials only for origins named, or our own.
        (ALLOWED, "https://shop.example", "testserver", (True, True)),
        (ALLOWED, "https://shop.example/", "testserver", (True, True)),
        (ALLOWED, "https://evil.example", "testserver", (False, False)),
        (ALLOWED, "http://testserver", "testserver", (True, True)),  # our own
        (ALLOWED, "null", "testserver", (False, False)),
        (["*"], "https://anyone.example", "testserver", (True, False)),
        (["*"], "http://testserver", "testserver", (True, True)),
        (["*", "https://shop.example"], "https://shop.example", "x", (True, True)),
        (["*", "https://shop.example"], "https://other.example", "x", (True, False)),
        # `null` never: not by `*`, not listed, not as "our own" host.
        (["*"], "null", "testserver", (False, False)),
        (["*"], "NULL ", "testserver", (False, False)),
        (["*", "null"], "null", "testserver", (False, False)),
        (["null"], "null", "null", (False, False)),
        ([], None, "testserver", (True, False)),  # no Origin: an app or a server
    ],
)
def test_origin_policy(
    allowed: list[str], origin: str | None, host: str, verdict: tuple[bool, bool]
) -> None:
    policy = OriginPolicy(allowed)
    credentialed = origin is not None and policy.credentialed(origin, host)
    assert (policy.allows(origin, host), credentialed) == verdict


def _app(origins: list[str]) -> FastAPI:
    return create_app(
        Settings(
            upstream_url="http://127.0.0.1:9",
            contact_center_id=SecretStr("cc"),
            secret_key=SecretStr("k" * 40),
            allowed_origins=origins,
        )
    )


CONFIGS = {"listed": ALLOWED, "wildcard": ["*"], "both": ["*", ALLOWED[0]]}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return {name: _app(origins) for name, origins in CONFIGS.items()}


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=60
)
ORIGINS = st.one_of(
    st.sampled_from(
        [*ALLOWED, "https://evil.example", "null", "NULL", "null/", "http://testserver"]
    ),
    HEADER_TEXT,
)


async def _ask(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, headers=headers)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    origin=st.one_of(st.none(), ORIGINS),
    preflight=st.booleans(),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "get", "X"]),
    asked=st.one_of(st.none(), HEADER_TEXT),
    path=st.sampled_from(["/api/v2/chats/", "/api/v2/chats/abc/events", "/healthz", "/nope"]),
)
def test_cross_origin_answers_hold_their_invariants(
    apps: dict[str, FastAPI],
    config: str,
    origin: str | None,
    preflight: bool,
    method: str,
    asked: str | None,
    path: str,
) -> None:
    headers = {} if origin is None else {"Origin": origin}
    if preflight:
        headers["Access-Control-Request-Method"] = method
        if asked is not None:
            headers["Access-Control-Request-Headers"] = asked
    answer = asyncio.run(_ask(apps[config], "OPTIONS" if preflight else "GET", path, headers))

    assert answer.status_code < 500
    assert "origin" in answer.headers.get("vary", "").lower()
    policy = OriginPolicy(CONFIGS[config])
    allowed = origin is not None and policy.allows(origin, "testserver")
    echoed = answer.headers.get("access-control-allow-origin")
    credentials = answer.headers.get("access-control-allow-credentials")
    if origin is not None and origin.strip(" /").lower() == "null":
        assert not allowed  # never, in any configuration
    if allowed:
        assert origin is not None
        if preflight or path.startswith("/api/") or path == "/healthz":
            if policy.credentialed(origin, "testserver"):
                assert echoed == origin  # the exact origin, with credentials
                assert credentials == "true"
            else:
                assert echoed == "*"  # allowed by the wildcard only: no credentials
                assert credentials is None
    else:
        assert echoed is None
        assert credentials is None
        if origin is not None and (preflight or path.startswith("/api/")):
            assert answer.status_code == 403
            assert answer.json() == {"statusCode": 3, "statusMessage": "Origin not allowed"}
    if preflight and allowed and answer.status_code == 204:
        assert method in ("GET", "POST")
        assert int(answer.headers["access-control-max-age"]) > 0
        listed = answer.headers.get("access-control-allow-headers", "")
        assert listed == requested_headers(asked)
