"""Logs as an operator's collector reads them: every line one JSON object (uvicorn's too),
one access line per request with its request id, client IP, route template, status and
duration, and never a chat handle. `BFF_LOG_FORMAT=text` for a terminal."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.servers import ServerProcess, start_bff


@pytest.fixture(scope="module")
def json_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    # The replicas believe X-Forwarded-For from loopback only (a proxy in front of them).
    server = start_bff(emulator.url, BFF_TRUSTED_PROXIES="127.0.0.1/32")
    yield server
    server.stop()


def records(server: ServerProcess) -> list[dict[str, object]]:
    lines = [line for line in server.logs().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"time", "level", "logger", "message"} <= set(r) for r in parsed)
    return parsed


def eventually(
    server: ServerProcess, wanted: Callable[[dict[str, object]], bool]
) -> list[dict[str, object]]:
    """The records `wanted` picks, once there is one: a line is written after its answer."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in records(server) if wanted(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def access(server: ServerProcess, request_id: str) -> dict[str, object]:
    lines = eventually(
        server, lambda r: r.get("request_id") == request_id and r["logger"] == "chat_bff.access"
    )
    assert len(lines) == 1, server.logs()[-2000:]
    return lines[0]


def test_every_line_is_json_and_uvicorn_speaks_it_too(json_bff: ServerProcess) -> None:
    httpx.get(json_bff.url + "/healthz", timeout=5)
    loggers = {r["logger"] for r in records(json_bff)}
    assert "uvicorn.error" in loggers  # "Started server process", "Uvicorn running on ..."
    assert "chat_bff" in loggers  # the startup line


def test_request_id_is_taken_echoed_and_logged_with_the_route(json_bff: ServerProcess) -> None:
    with httpx.Client(base_url=json_bff.url, timeout=10) as http:
        handle = start_chat(http)
        answer = http.get(
            f"/api/v2/chats/{handle}",
            headers={"X-Request-ID": "trace-4f2a.7", "X-Forwarded-For": "203.0.113.9"},
        )
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "trace-4f2a.7"
    line = access(json_bff, "trace-4f2a.7")
    assert line["route"] == "/api/v2/chats/{handle}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["client_ip"] == "203.0.113.9"
    assert handle not in json_bff.logs()


def test_request_id_is_made_when_missing_or_unsafe(json_bff: ServerProcess) -> None:
    with httpx.Client(base_url=json_bff.url, timeout=10) as http:
        made = http.get("/healthz").headers["X-Request-ID"]
        unsafe = "a b <script>" + "x" * 200
        replaced = http.get("/healthz", headers={"X-Request-ID": unsafe})
    assert len(made) == 32
    assert len(replaced.headers["X-Request-ID"]) == 32
    assert access(json_bff, made)["route"] == "/healthz"
    assert "<script>" not in json_bff.logs()


def test_handles_stay_out_of_logs_on_errors_and_streams(json_bff: ServerProcess) -> None:
    with httpx.Client(base_url=json_bff.url, timeout=10) as http:
        handle = start_chat(http)
        fake = handle[:-4] + "AAAA"
        assert http.get(f"/api/v2/chats/{fake}").status_code == 404
        assert http.get(f"/api/v2/chats/{handle}/nowhere").status_code == 404
        with http.stream("GET", f"/api/v2/chats/{handle}/events") as stream:
            next(stream.iter_lines())
        body = {"operationName": "SendMessage", "text": "x" * 5000}
        assert http.post(f"/api/v2/chats/{handle}", json=body).status_code == 400
    streams = eventually(json_bff, lambda r: r.get("route") == "/api/v2/chats/{handle}/events")
    assert streams and streams[-1]["stream"] is True
    logs = json_bff.logs()
    for secret in (handle, fake):
        assert secret not in logs
    routes = {r.get("route") for r in records(json_bff)}
    assert {"/api/v2/chats/{handle}", "unmatched"} <= routes


def test_text_format_for_terminals(emulator: ServerProcess) -> None:
    server = start_bff(emulator.url, BFF_LOG_FORMAT="text")
    try:
        httpx.get(server.url + "/healthz", headers={"X-Request-ID": "plain-1"}, timeout=5)
    finally:
        server.stop()
    lines = server.logs().splitlines()
    assert lines
    assert not any(line.startswith("{") for line in lines)
    assert any("GET /healthz 200" in line and "[plain-1]" in line for line in lines)


def test_answers_given_before_the_router_carry_their_route(json_bff: ServerProcess) -> None:
    """An idempotent replay, a refused Idempotency-Key, the OpenAPI document and a path with a
    trailing slash are logged and counted under their route's template; `unmatched` is left
    for paths no route takes."""
    body = {"operationName": "RequestChat", "nickname": "Route", "subject": "templates"}
    key = str(uuid.uuid4())
    asked = {
        "first": ("POST", "/api/v2/chats", {"Idempotency-Key": key}, body),
        "replay": ("POST", "/api/v2/chats/", {"Idempotency-Key": key}, body),
        "weak key": ("POST", "/api/v2/chats", {"Idempotency-Key": "1"}, body),
        "openapi": ("GET", "/openapi.json", {}, None),
        "nowhere": ("GET", "/api/v2/nowhere", {}, None),
    }
    wanted = {
        "first": ("/api/v2/chats", 200),
        "replay": ("/api/v2/chats", 200),
        "weak key": ("/api/v2/chats", 400),
        "openapi": ("/openapi.json", 200),
        "nowhere": ("unmatched", 404),
    }
    with httpx.Client(base_url=json_bff.url, timeout=10) as http:
        for name, (method, path, headers, payload) in asked.items():
            rid = f"route-{name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
            answer = http.request(
                method, path, headers={**headers, "X-Request-ID": rid}, json=payload
            )
            if name == "replay":
                assert answer.headers.get("Idempotent-Replayed") == "true"
            line = access(json_bff, rid)
            assert (line["route"], line["status"]) == wanted[name], name
        metrics = http.get("/metrics").text
    for route, status in wanted.values():
        assert f'bff_http_requests_total{{route="{route}",status="{status}"}}' in metrics
