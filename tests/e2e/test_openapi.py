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
            assert "422" not in responses, "validation errors answer 400, not 422"
            # A chat's routes; availability and offline messages have no chat to miss.
            if "{handle}" not in path:
                continue
            assert {"404", "503"} <= set(responses), path
            # Reading the chat resource takes no input but the handle (a bad one is a 404).
            takes_input = not (method == "get" and path.endswith("{handle}"))
            assert ("400" in responses) is takes_input, (method, path)
    body = spec["components"]["schemas"]["RequestChatBody"]["properties"]
    assert body["nickname"]["maxLength"] == 64
    assert body["subject"]["maxLength"] == 256
    assert client.get("/docs").status_code == 200


def test_openapi_documents_availability_and_offline_messages(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    availability = spec["paths"]["/api/v2/availability"]["get"]
    assert set(availability["responses"]) == {"200", "403"}
    leave = spec["paths"]["/api/v2/offline-messages"]["post"]
    # 409: a retry while the first request with its Idempotency-Key still runs; 507: the
    # left messages waiting for delivery fill their quota.
    assert set(leave["responses"]) == {
        "202",
        "400",
        "403",
        "409",
        "413",
        "415",
        "429",
        "503",
        "507",
    }
    assert "Retry-After" not in leave["responses"]["507"].get("headers", {})
    schemas = spec["components"]["schemas"]
    message = schemas["OfflineMessageBody"]
    assert set(message["required"]) == {"nickname", "email", "text"}
    assert message["properties"]["text"]["maxLength"] == 4000
    assert set(schemas["Availability"]["properties"]) == {
        "open",
        "reason",
        "nextOpen",
        "statusCode",
    }
    push_token = schemas["RequestChatBody"]["properties"]["pushToken"]["anyOf"][0]
    assert push_token["maxLength"] == 1024
