"""Every bad input gets its error in the upstream's shape, and reaches no upstream."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.chats import start_chat
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff

JSON = {"Content-Type": "application/json"}
OK_CHAT = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Help"}

# (case, body or raw bytes, headers, HTTP status, statusCode)
CREATE_CASES: list[tuple[str, Any, dict[str, str], int, int]] = [
    ("invalid JSON", b"{nickname:", JSON, 400, 10),
    ("JSON array", b"[]", JSON, 400, 10),
    ("not JSON content type", b"nickname=x", {"Content-Type": "text/plain"}, 415, 10),
    ("no content type", b"{}", {}, 415, 10),
    ("form body", b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}, 415, 10),
    ("no operationName", {"nickname": "a", "subject": "b"}, JSON, 400, 1),
    ("wrong operationName", {**OK_CHAT, "operationName": "SendMessage"}, JSON, 400, 10),
    ("no nickname", {"operationName": "RequestChat", "subject": "b"}, JSON, 400, 1),
    ("empty nickname", {**OK_CHAT, "nickname": ""}, JSON, 400, 10),
    ("blank nickname", {**OK_CHAT, "nickname": "   "}, JSON, 400, 10),
    ("long nickname", {**OK_CHAT, "nickname": "n" * 65}, JSON, 400, 10),
    ("nickname not a string", {**OK_CHAT, "nickname": 42}, JSON, 400, 10),
    ("control characters", {**OK_CHAT, "nickname": "a\x00b"}, JSON, 400, 10),
    ("no subject", {"operationName": "RequestChat", "nickname": "a"}, JSON, 400, 1),
    ("long subject", {**OK_CHAT, "subject": "s" * 257}, JSON, 400, 10),
    ("userData not flat", {**OK_CHAT, "userData": {"a": {"b": "c"}}}, JSON, 400, 10),
    ("userData number", {**OK_CHAT, "userData": {"a": 1}}, JSON, 400, 10),
    (
        "userData too many keys",
        {**OK_CHAT, "userData": {str(i): "v" for i in range(33)}},
        JSON,
        400,
        10,
    ),
    ("userData long value", {**OK_CHAT, "userData": {"k": "v" * 1025}}, JSON, 400, 10),
    ("userData long key", {**OK_CHAT, "userData": {"k" * 65: "v"}}, JSON, 400, 10),
    ("endpoint too long", {**OK_CHAT, "endpoint": "e" * 129}, JSON, 400, 10),
    ("body too large", {**OK_CHAT, "subject": "s", "pad": "x" * 40_000}, JSON, 413, 10),
]

OPERATION_CASES: list[tuple[str, Any, int, int]] = [
    ("SendMessage without text", {"operationName": "SendMessage"}, 400, 1),
    ("empty text", {"operationName": "SendMessage", "text": ""}, 400, 10),
    ("blank text", {"operationName": "SendMessage", "text": " \n "}, 400, 10),
    ("text too long", {"operationName": "SendMessage", "text": "t" * 4001}, 400, 10),
    ("text not a string", {"operationName": "SendMessage", "text": ["a"]}, 400, 10),
    ("unknown operation", {"operationName": "DeleteChat"}, 400, 10),
    ("RequestChat on a chat", {"operationName": "RequestChat"}, 400, 10),
    ("no operationName", {"text": "hi"}, 400, 1),
    ("operationName not a string", {"operationName": 7}, 400, 10),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [c[1:] for c in CREATE_CASES],
    ids=[c[0] for c in CREATE_CASES],
)
def test_bad_request_chat(
    client: httpx.Client,
    control: EmulatorControl,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: int,
) -> None:
    before = control.count("POST")
    if isinstance(body, bytes):
        answer = client.post("/api/v2/chats", content=body, headers=headers)
    else:
        answer = client.post("/api/v2/chats", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert set(payload) == {"statusCode", "statusMessage"}
    assert payload["statusCode"] == code
    assert payload["statusMessage"]
    assert control.count("POST") == before, "a bad request reached the upstream"


@pytest.fixture(scope="module")
def live_handle(bff: Any) -> str:
    with httpx.Client(base_url=bff.url) as http:
        return start_chat(http)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [c[1:] for c in OPERATION_CASES],
    ids=[c[0] for c in OPERATION_CASES],
)
def test_bad_chat_operation(
    client: httpx.Client,
    control: EmulatorControl,
    live_handle: str,
    body: Any,
    status: int,
    code: int,
) -> None:
    before = control.count("POST")
    answer = client.post(f"/api/v2/chats/{live_handle}", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["statusCode"] == code
    assert control.count("POST") == before, "a bad request reached the upstream"


BAD_HANDLES = [
    "x",
    "not-a-handle",
    "A" * 60,
    "%00",
    "a" * 2000,
    "../../etc/passwd",
    "652492d9-c2d9-44c9-b9ad-0ab7984114bb",
]


@pytest.mark.parametrize("handle", BAD_HANDLES)
def test_malformed_or_unknown_handles_are_404_without_upstream(
    client: httpx.Client, control: EmulatorControl, handle: str
) -> None:
    before = control.count("POST")
    for answer in (
        client.get(f"/api/v2/chats/{handle}"),
        client.get(f"/api/v2/chats/{handle}/messages"),
        client.post(f"/api/v2/chats/{handle}", json={"operationName": "Complete"}),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json()["statusCode"] == 6
    assert control.count("POST") == before


def test_tampered_handle_is_404(
    client: httpx.Client, control: EmulatorControl, live_handle: str
) -> None:
    before = control.count("POST")
    for position in (0, 5, 20, len(live_handle) // 2, len(live_handle) - 1):
        flipped = "A" if live_handle[position] != "A" else "B"
        tampered = live_handle[:position] + flipped + live_handle[position + 1 :]
        assert client.get(f"/api/v2/chats/{tampered}").status_code == 404
    assert client.get(f"/api/v2/chats/{live_handle[:-2]}").status_code == 404
    assert control.count("POST") == before


@pytest.mark.parametrize("index", ["-1", "abc", "1.5", "99999999999", ""])
def test_bad_index(
    client: httpx.Client, control: EmulatorControl, live_handle: str, index: str
) -> None:
    before = control.count("POST")
    answer = client.get(f"/api/v2/chats/{live_handle}/messages", params={"index": index})
    assert answer.status_code == 400
    assert answer.json()["statusCode"] == 10
    assert control.count("POST") == before


def test_foreign_origin_is_refused(client: httpx.Client, control: EmulatorControl) -> None:
    before = control.count("POST")
    answer = client.post("/api/v2/chats", json=OK_CHAT, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert answer.json()["statusCode"] == 3
    assert control.count("POST") == before


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert client.get("/api/v2/nothing").json() == {"statusCode": 6, "statusMessage": "Not found"}
    answer = client.delete("/api/v2/chats")
    assert answer.status_code == 405
    assert answer.json()["statusCode"] == 3


def test_rate_limits_per_client_ip(emulator: ServerProcess, control: EmulatorControl) -> None:
    strict = start_bff(
        emulator.url,
        BFF_CHAT_CREATE_PER_MINUTE="1",
        BFF_CHAT_CREATE_BURST="2",
        BFF_SEND_PER_MINUTE="1",
        BFF_SEND_BURST="3",
    )
    try:
        with httpx.Client(base_url=strict.url, timeout=10) as http:
            handles = [start_chat(http), start_chat(http)]
            before = control.count("POST")
            refused = http.post("/api/v2/chats", json=OK_CHAT)
            assert refused.status_code == 429
            assert refused.json()["statusCode"] == 3
            assert int(refused.headers["Retry-After"]) >= 1
            sends = [
                http.post(f"/api/v2/chats/{handles[0]}", json={"operationName": "Complete"})
                for _ in range(4)
            ]
            assert [a.status_code for a in sends][-1] == 429
            assert control.count("POST") - before <= 3, "a refused request reached the upstream"
    finally:
        strict.stop()
