"""OpenAPI documents every public route, its field limits and its errors."""

from __future__ import annotations

import httpx


def test_openapi_documents_routes_limits_and_errors(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v2/chats",
        "/api/v2/chats/{handle}",
        "/api/v2/chats/{handle}/messages",
        "/api/v2/chats/{handle}/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    for path, methods in paths.items():
        if not path.startswith("/api/"):
            continue
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"404", "503"} <= set(responses) or path == "/api/v2/chats", path
            # Reading the chat resource takes no input but the handle (a bad one is a 404).
            takes_input = not (method == "get" and path.endswith("{handle}"))
            assert ("400" in responses) is takes_input, (method, path)
            assert "422" not in responses, "validation errors answer 400, not 422"
    body = spec["components"]["schemas"]["RequestChatBody"]["properties"]
    assert body["nickname"]["maxLength"] == 64
    assert body["subject"]["maxLength"] == 256
    assert client.get("/docs").status_code == 200
