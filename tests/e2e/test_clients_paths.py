"""Paths as clients write them: every route with and without a trailing slash, answered
directly (never a redirect); the `/api/v2/me/chat/...` reads of the upstream's overview
page; and proxy headers believed from trusted proxies only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.cli import _server
from harness.chats import start_chat, wait_for
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff


def test_every_route_answers_with_and_without_a_trailing_slash(
    client: httpx.Client, control: EmulatorControl
) -> None:
    created = client.post(
        "/api/v2/chats/",
        json={"operationName": "RequestChat", "nickname": "Slash", "subject": "trailing"},
    )
    assert created.status_code == 200, created.text
    handle = created.json()["id"]
    assert created.json()["path"] == f"/api/v2/chats/{handle}"

    for slash in ("", "/"):
        for path in (
            f"/api/v2/chats/{handle}",
            f"/api/v2/chats/{handle}/messages",
            f"/api/v2/me/chat/{handle}",
            f"/api/v2/me/chat/{handle}/messages",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/redoc",
        ):
            answer = client.get(path + slash)
            assert answer.status_code == 200, (path + slash, answer.status_code)
            assert "location" not in answer.headers
        answer = client.get(f"/api/v2/chats/{handle}/messages{slash}", params={"index": 1})
        assert answer.status_code == 200
        sent = client.post(
            f"/api/v2/chats/{handle}{slash}",
            json={"operationName": "SendMessage", "text": f"slash={slash!r}"},
        )
        assert sent.status_code == 200, sent.text
        with client.stream("GET", f"/api/v2/chats/{handle}/events{slash}") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")

    def both_sent() -> bool:
        texts = [
            m.get("text")
            for m in client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()[
                "messages"
            ]
        ]
        return "slash=''" in texts and "slash='/'" in texts

    wait_for(both_sent, what="both sends in the transcript")
    # Unknown paths are a plain JSON 404 either way, not a redirect to the other spelling.
    for path in ("/api/v2/nothing", "/api/v2/nothing/"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json()["statusCode"] == 6


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v2/chats/some-handle", "GET, POST"),
        ("DELETE", "/api/v2/chats/some-handle/", "GET, POST"),
        ("GET", "/api/v2/chats", "POST"),
        ("GET", "/api/v2/chats/", "POST"),
        ("DELETE", "/api/v2/me/chat/some-handle/messages", "GET"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_a_wrong_method_is_a_405_naming_every_allowed_one(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.json() == {"statusCode": 3, "statusMessage": "Method not allowed"}


def test_me_chat_paths_are_the_same_reads(client: httpx.Client) -> None:
    handle = start_chat(client, "Overview")

    def settled() -> bool:
        """The agent joined and greeted; then nothing changes until the customer writes."""
        chat = client.get(f"/api/v2/chats/{handle}").json()["chat"]
        texts = [
            m.get("text", "")
            for m in client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()[
                "messages"
            ]
        ]
        return chat["state"] == "Chatting" and any(t.startswith("Hello Overview") for t in texts)

    wait_for(settled, what="the agent's greeting")
    assert (
        client.get(f"/api/v2/me/chat/{handle}").json()
        == client.get(f"/api/v2/chats/{handle}").json()
    )
    by_index = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).json()
    assert client.get(f"/api/v2/me/chat/{handle}/messages", params={"index": 1}).json() == (
        by_index
    )
    # Index-less reads share one cursor whichever path the client uses: each message once.
    first = client.get(f"/api/v2/me/chat/{handle}/messages").json()["messages"]
    second = client.get(f"/api/v2/chats/{handle}/messages").json()["messages"]
    assert [m["index"] for m in first] == [m["index"] for m in by_index["messages"]]
    assert second == []
    # Same validation and the same 404.
    assert client.get(f"/api/v2/me/chat/{handle}/messages", params={"index": "x"}).status_code == (
        400
    )
    assert client.get("/api/v2/me/chat/forged-handle").status_code == 404


@pytest.fixture(scope="module")
def behind_proxy(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_TRUSTED_PROXIES="127.0.0.1/32",
        BFF_CHAT_CREATE_PER_MINUTE="1",
        BFF_CHAT_CREATE_BURST="1",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def no_proxy(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_CHAT_CREATE_PER_MINUTE="1", BFF_CHAT_CREATE_BURST="1")
    yield server
    server.stop()


def _create(server: ServerProcess, forwarded_for: str) -> int:
    answer = httpx.post(
        server.url + "/api/v2/chats/",
        json={"operationName": "RequestChat", "nickname": "Proxied", "subject": "ip"},
        headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
        timeout=15,
    )
    return answer.status_code


def test_proxy_headers_are_believed_from_trusted_proxies_only(
    behind_proxy: ServerProcess, no_proxy: ServerProcess
) -> None:
    """uvicorn's proxy headers are on exactly when BFF_TRUSTED_PROXIES is set: clients behind
    the proxy are told apart (their own creation limit each), and nobody else can pick an
    address by writing the header."""
    assert _create(behind_proxy, "203.0.113.7") == 200
    assert _create(behind_proxy, "203.0.113.7") == 429
    assert _create(behind_proxy, "203.0.113.8") == 200
    assert _create(behind_proxy, "198.51.100.1, 203.0.113.9") == 200  # the right-most hop
    assert _create(no_proxy, "203.0.113.7") == 200
    assert _create(no_proxy, "203.0.113.8") == 429  # the header is ignored: same peer


@pytest.mark.parametrize(
    ("trusted", "on", "ips"),
    [([], False, None), (["10.0.0.0/8", "127.0.0.1/32"], True, ["10.0.0.0/8", "127.0.0.1/32"])],
)
def test_uvicorn_proxy_headers_follow_the_trusted_proxies(
    trusted: list[str], on: bool, ips: list[str] | None
) -> None:
    config = _server(object(), "127.0.0.1", 0, 1, trusted).config
    assert config.proxy_headers is on
    if on:
        assert config.forwarded_allow_ips == ips
