"""Cross-origin rules as browsers meet them, against real chat-bff processes: preflights for
any declared request header and our methods, credentials with the origin echoed for listed
origins, `*` without credentials for origins allowed only by `BFF_ALLOWED_ORIGINS=*`, the
`null` origin never allowed, `Vary: Origin`, `Access-Control-Max-Age`, and a JSON 403 for a
foreign origin."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.servers import ServerProcess, start_bff

SHOP = "http://shop.example:8080"
EVIL = "https://evil.example"
CLIENT_HEADERS = "x-api-key, contactcenterid, content-type, idempotency-key, x-request-id"


@pytest.fixture(scope="module")
def listed(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_ALLOWED_ORIGINS=f"{SHOP}, https://other.example")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def anyone(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_ALLOWED_ORIGINS="*")
    yield server
    server.stop()


def preflight(base: str, path: str, origin: str, method: str, headers: str) -> httpx.Response:
    return httpx.options(
        base + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=5,
    )


def vary(answer: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in answer.headers.get("vary", "").split(",")}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v2/chats"),
        ("POST", "/api/v2/chats/"),
        ("POST", "/api/v2/chats/some-handle"),
        ("GET", "/api/v2/chats/some-handle/messages?index=1"),
        ("GET", "/api/v2/me/chat/some-handle/messages"),
        ("GET", "/api/v2/chats/some-handle/events"),
    ],
)
@pytest.mark.parametrize("server", ["listed", "anyone"])
def test_preflight_allows_any_declared_header(
    request: pytest.FixtureRequest, server: str, method: str, path: str
) -> None:
    base = request.getfixturevalue(server).url
    answer = preflight(base, path, SHOP, method, CLIENT_HEADERS + ", X-Weird-Vendor-Header")
    assert answer.status_code == 204, answer.text
    if server == "listed":
        assert answer.headers["access-control-allow-origin"] == SHOP  # echoed
        assert answer.headers["access-control-allow-credentials"] == "true"
    else:
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert allowed >= {h.strip() for h in CLIENT_HEADERS.split(",")} | {"x-weird-vendor-header"}
    assert {"GET", "POST"} <= {
        m.strip() for m in answer.headers["access-control-allow-methods"].split(",")
    }
    assert int(answer.headers["access-control-max-age"]) >= 600
    assert "origin" in vary(answer)


def test_preflight_from_a_foreign_origin_is_a_json_403(listed: ServerProcess) -> None:
    answer = preflight(listed.url, "/api/v2/chats/", EVIL, "POST", "x-api-key, content-type")
    assert answer.status_code == 403
    assert answer.json() == {"statusCode": 3, "statusMessage": "Origin not allowed"}
    assert "access-control-allow-origin" not in answer.headers
    assert "origin" in vary(answer)


def test_preflight_for_a_method_we_do_not_have_is_refused(listed: ServerProcess) -> None:
    answer = preflight(listed.url, "/api/v2/chats/x", SHOP, "DELETE", "")
    assert answer.status_code == 405
    assert answer.json()["statusCode"] == 3
    assert answer.headers["allow"] == "GET, POST"


def test_requests_with_credentials_from_an_allowed_origin(listed: ServerProcess) -> None:
    headers = {"Origin": SHOP, "X-Api-Key": "k-123", "Cookie": "session=abc"}
    with httpx.Client(base_url=listed.url, timeout=15, headers=headers) as client:
        handle = start_chat(client)
        for answer in (
            client.get(f"/api/v2/chats/{handle}"),
            client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}),
            client.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"}),
        ):
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == SHOP
            assert answer.headers["access-control-allow-credentials"] == "true"
            assert "retry-after" in answer.headers["access-control-expose-headers"].lower()
            assert "origin" in vary(answer)
            assert "set-cookie" not in answer.headers  # credentials allowed, none set
        # Errors carry the CORS headers too, or a page could not read them.
        missing = client.get("/api/v2/chats/not-a-handle-at-all")
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == SHOP


def test_the_stream_answers_cross_origin_with_credentials(listed: ServerProcess) -> None:
    with httpx.Client(base_url=listed.url, timeout=15) as client:
        handle = start_chat(client)
        with client.stream(
            "GET", f"/api/v2/chats/{handle}/events", headers={"Origin": SHOP}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["access-control-allow-origin"] == SHOP
            assert stream.headers["access-control-allow-credentials"] == "true"


def test_wildcard_answers_star_without_credentials(anyone: ServerProcess) -> None:
    """Issue 18: `*` used to echo every origin with credentials, so any site could read
    answers to requests made with a visitor's credentials. A wildcard vouches for no one."""
    for origin in (SHOP, "https://a.example", "http://127.0.0.1:9"):
        answer = httpx.post(
            anyone.url + "/api/v2/chats/",
            json={"operationName": "RequestChat"},  # a 400: still readable cross-origin
            headers={"Origin": origin},
            timeout=5,
        )
        assert answer.status_code == 400
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        assert "retry-after" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("server", ["listed", "anyone"])
def test_the_null_origin_is_never_allowed(request: pytest.FixtureRequest, server: str) -> None:
    """Sandboxed frames, `file:` pages and data URLs send `Origin: null`: any site can make
    one, so no configuration allows it (`*` reflected it, with credentials, before)."""
    base = request.getfixturevalue(server).url
    asked = preflight(base, "/api/v2/chats", "null", "POST", "content-type")
    sent = httpx.post(
        base + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": "Eve", "subject": "x"},
        headers={"Origin": "null"},
        timeout=5,
    )
    for answer in (asked, sent):
        assert answer.status_code == 403, answer.text
        assert answer.json() == {"statusCode": 3, "statusMessage": "Origin not allowed"}
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v2/chats"),
        ("POST", "/api/v2/chats/some-handle/"),
        ("GET", "/api/v2/chats/some-handle"),
        ("GET", "/api/v2/me/chat/some-handle/messages/"),
        ("GET", "/api/v2/chats/some-handle/events"),
    ],
)
def test_actual_request_from_a_foreign_origin_is_a_json_403(
    listed: ServerProcess, method: str, path: str
) -> None:
    answer = httpx.request(
        method,
        listed.url + path,
        json={"operationName": "RequestChat", "nickname": "Eve", "subject": "x"}
        if method == "POST"
        else None,
        headers={"Origin": EVIL},
        timeout=5,
    )
    assert answer.status_code == 403
    assert answer.json() == {"statusCode": 3, "statusMessage": "Origin not allowed"}
    assert "access-control-allow-origin" not in answer.headers


def test_same_origin_and_originless_clients_need_no_listing(bff: ServerProcess) -> None:
    """The default (no BFF_ALLOWED_ORIGINS): apps and servers send no Origin; a page served
    by chat-bff itself sends its own."""
    plain = httpx.get(bff.url + "/api/v2/chats/x", timeout=5)
    assert plain.status_code == 404
    assert "access-control-allow-origin" not in plain.headers
    assert "origin" in vary(plain)
    own = httpx.get(bff.url + "/api/v2/chats/x", headers={"Origin": bff.url}, timeout=5)
    assert own.status_code == 404
    foreign = httpx.get(bff.url + "/api/v2/chats/x", headers={"Origin": SHOP}, timeout=5)
    assert foreign.status_code == 403
