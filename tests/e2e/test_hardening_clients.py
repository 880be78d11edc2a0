"""Nothing a client sends can hurt chat-bff: strict parameters, exact handles, bodies limited
however they are framed, held requests capped per IP, the client IP read from every
X-Forwarded-For line, and a Cache-Control on every answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff

OK_CHAT = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Help"}


@pytest.fixture(scope="module")
def handle(bff: ServerProcess) -> str:
    with httpx.Client(base_url=bff.url, timeout=10) as http:
        return start_chat(http)


NON_ASCII_DIGITS = ["²", "١٢", "\uff11", "\U0001d7d9", "1²", "٣"]


@pytest.mark.parametrize("raw", NON_ASCII_DIGITS)
def test_non_ascii_digits_are_bad_input_not_500(
    client: httpx.Client, handle: str, raw: str
) -> None:
    answers = [
        client.get(f"/api/v2/chats/{handle}/messages", params={"index": raw}),
        client.get(f"/api/v2/chats/{handle}/messages", params={"index": "1", "wait": raw}),
        client.get(f"/api/v2/chats/{handle}/events", params={"lastEventId": raw}),
        client.get(
            f"/api/v2/chats/{handle}/events", headers={"Last-Event-ID": raw.encode("utf-8")}
        ),
    ]
    for answer in answers:
        assert answer.status_code == 400, (raw, answer.status_code, answer.text)
        assert answer.json()["statusCode"] == 10


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%0A%0A", "%20", "%00"])
def test_a_handle_with_a_trailing_newline_is_unknown(
    client: httpx.Client, control: EmulatorControl, handle: str, suffix: str
) -> None:
    before = control.count("POST")
    for answer in (
        client.get(f"/api/v2/chats/{handle}{suffix}"),
        client.get(f"/api/v2/chats/{handle}{suffix}/messages"),
        client.post(f"/api/v2/chats/{handle}{suffix}", json={"operationName": "Complete"}),
    ):
        assert answer.status_code == 404, answer.text
        assert "\n" not in answer.text
    assert control.count("POST") == before


def test_a_chunked_body_over_the_limit_is_413(
    client: httpx.Client, control: EmulatorControl
) -> None:
    before = control.count("POST")

    def chunks() -> Iterator[bytes]:
        yield b'{"operationName":"RequestChat","nickname":"a","subject":"'
        for _ in range(10):
            yield b"s" * 8192
        yield b'"}'

    answer = client.post(
        "/api/v2/chats", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["statusCode"] == 10
    assert control.count("POST") == before


def test_a_chunked_body_within_the_limit_is_served(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"operationName":"RequestChat",'
        yield b'"nickname":"Chunky","subject":"chunked"}'

    answer = client.post(
        "/api/v2/chats", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def capped(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_MAX_STREAMS_PER_IP="3",
        BFF_CHAT_CREATE_BURST="100",
    )
    yield server
    server.stop()


async def test_long_polls_are_capped_per_ip(capped: ServerProcess) -> None:
    with httpx.Client(base_url=capped.url, timeout=10) as http:
        handle = start_chat(http)
        http.get(f"/api/v2/chats/{handle}")  # warm
    path = f"/api/v2/chats/{handle}/messages"
    async with httpx.AsyncClient(base_url=capped.url, timeout=20) as http:
        held = [
            asyncio.create_task(http.get(path, params={"index": 10_000, "wait": 4}))
            for _ in range(3)
        ]
        await asyncio.sleep(1.0)
        refused = await http.get(path, params={"index": 10_000, "wait": 4})
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        # An answer that needs no wait is not held, so it is not refused.
        assert (await http.get(path, params={"index": 1})).status_code == 200
        assert [a.status_code for a in await asyncio.gather(*held)] == [200, 200, 200]
        # Once they are answered, the slots are free again.
        assert (await http.get(path, params={"index": 10_000, "wait": 0.2})).status_code == 200


def test_a_forged_first_forwarded_for_line_does_not_dodge_limits(
    emulator: ServerProcess,
) -> None:
    strict = start_bff(
        emulator.url,
        BFF_TRUSTED_PROXIES="127.0.0.1/32",
        BFF_CHAT_CREATE_PER_MINUTE="1",
        BFF_CHAT_CREATE_BURST="1",
    )
    try:
        with httpx.Client(base_url=strict.url, timeout=10) as http:
            statuses = []
            for n in range(3):
                # HAProxy appends its own line after whatever the client sent.
                headers = [
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", f"10.9.9.{n}"),
                    ("X-Forwarded-For", "203.0.113.7"),
                ]
                answer = http.post("/api/v2/chats", json=OK_CHAT, headers=headers)
                statuses.append(answer.status_code)
            assert statuses == [200, 429, 429]
            # Another real client behind the same proxy has its own budget.
            other = http.post(
                "/api/v2/chats",
                json=OK_CHAT,
                headers=[("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-For", "198.51.100.4")],
            )
            assert other.status_code == 200
    finally:
        strict.stop()


def _answers(client: httpx.Client, handle: str) -> dict[str, httpx.Response]:
    return {
        "404 unknown route": client.get("/api/v2/nothing"),
        "404 outside the API": client.get("/nothing-here"),
        "405": client.delete("/api/v2/chats"),
        "400 body parse": client.post(
            "/api/v2/chats", content=b"{nick", headers={"Content-Type": "application/json"}
        ),
        "413": client.post(
            "/api/v2/chats", content=b"x" * 40_000, headers={"Content-Type": "application/json"}
        ),
        "415": client.post("/api/v2/chats", content=b"a=b"),
        "preflight": client.options(
            "/api/v2/chats",
            headers={"Origin": "http://127.0.0.1", "Access-Control-Request-Method": "POST"},
        ),
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "metrics": client.get("/metrics"),
        "docs": client.get("/docs"),
        "openapi": client.get("/openapi.json"),
        "static": client.get("/static/widget.js"),
        "static 404": client.get("/static/nothing.js"),
        "index": client.get("/"),
        "read": client.get(f"/api/v2/chats/{handle}"),
        "messages": client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}),
    }


def test_every_answer_says_how_to_cache_it(client: httpx.Client, handle: str) -> None:
    missing = {
        name: answer.status_code
        for name, answer in _answers(client, handle).items()
        if not answer.headers.get("cache-control")
    }
    assert missing == {}


def test_api_answers_and_streams_are_never_stored(client: httpx.Client, handle: str) -> None:
    answers = _answers(client, handle)
    for name in ("404 unknown route", "405", "400 body parse", "413", "415", "read", "messages"):
        assert "no-store" in answers[name].headers["cache-control"], name
    with client.stream("GET", f"/api/v2/chats/{handle}/events") as stream:
        directives = {d.strip() for d in stream.headers["cache-control"].split(",")}
    assert "no-store" in directives or "private" in directives
    assert "no-transform" in directives


@pytest.mark.parametrize("path", ["/healthz", "/"])
def test_head_answers_like_get_without_a_body(client: httpx.Client, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers.get("cache-control") == get.headers.get("cache-control")


# -- found by schemathesis: methods a path does not take ----------------------------------


def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(
    client: httpx.Client, handle: str
) -> None:
    for method, path, allowed in (
        ("DELETE", f"/api/v2/chats/{handle}", {"GET", "POST"}),
        ("PUT", f"/api/v2/chats/{handle}/events", {"GET"}),
        ("POST", f"/api/v2/chats/{handle}/events", {"GET"}),
        ("POST", f"/api/v2/chats/{handle}/messages", {"GET"}),
        ("PATCH", "/api/v2/chats", {"POST"}),
    ):
        answer = client.request(method, path, content=b"x")
        assert answer.status_code == 405, (method, path, answer.text)
        assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed
