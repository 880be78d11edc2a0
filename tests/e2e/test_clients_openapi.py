"""What `/openapi.json` of a live instance tells client developers and SDK generators:
readable operation ids, typed and bounded parameters, schemas for every answer and stream
event, the errors each route really answers, and Retry-After where it is sent."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.api import answers, bodies
from app.api.answers import KNOWN_MESSAGE_TYPES


@pytest.fixture(scope="module")
def spec(bff: Any) -> dict[str, Any]:
    answer = httpx.get(bff.url + "/openapi.json", timeout=10)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }


def resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_operation_ids_are_readable_and_unique(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert len(ops) == sum(len(methods) for methods in spec["paths"].values())
    assert {
        "requestChat": ("post", "/api/v2/chats"),
        "operateChat": ("post", "/api/v2/chats/{handle}"),
        "getChat": ("get", "/api/v2/chats/{handle}"),
        "getMessages": ("get", "/api/v2/chats/{handle}/messages"),
        "chatEvents": ("get", "/api/v2/chats/{handle}/events"),
        "getMyChat": ("get", "/api/v2/me/chat/{handle}"),
        "getMyMessages": ("get", "/api/v2/me/chat/{handle}/messages"),
    }.items() <= {name: (m, p) for name, (m, p, _) in ops.items()}.items()
    for name in ops:
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", name), name


def test_query_parameters_are_typed_with_bounds(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    for name in ("getMessages", "getMyMessages"):
        params = {p["name"]: p["schema"] for p in ops[name][2]["parameters"]}
        assert params["index"] == {**params["index"], "type": "integer", "minimum": 0}
        assert params["index"]["maximum"] == 999_999_999
        # The configured long-poll limit (BFF_LONG_POLL_MAX_S, 30 by default), not a guess.
        assert params["wait"] == {**params["wait"], "type": "number", "minimum": 0, "maximum": 30}
    params = {(p["in"], p["name"]): p["schema"] for p in ops["chatEvents"][2]["parameters"]}
    for key in (("query", "lastEventId"), ("header", "Last-Event-ID")):
        assert params[key]["type"] == "integer"
        assert params[key]["minimum"] == 0


def test_chat_participant_and_message_schemas(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    chat = components["Chat"]
    assert set(chat["required"]) == {"id", "state", "capabilities", "participants"}
    assert chat["properties"]["participants"]["items"] == {
        "$ref": "#/components/schemas/Participant"
    }
    message = components["Message"]
    assert set(message["required"]) == {"index", "type"}
    assert message["additionalProperties"] is True  # every other upstream field is passed on
    kinds = message["properties"]["type"]["anyOf"]
    assert {"type": "string"} in kinds  # unknown types pass through as strings
    known = next(k for k in kinds if "$ref" in k)
    assert resolve(spec, known["$ref"])["enum"] == list(KNOWN_MESSAGE_TYPES)
    assert message["properties"]["from"]["anyOf"][0] == {"$ref": "#/components/schemas/Participant"}
    messages = components["MessageList"]["properties"]["messages"]
    assert messages["items"] == {"$ref": "#/components/schemas/Message"}
    assert components["Participant"]["additionalProperties"] is True


def test_each_stream_event_has_its_payload_schema(spec: dict[str, Any]) -> None:
    _, _, op = operations(spec)["chatEvents"]
    stream = op["responses"]["200"]["content"]["text/event-stream"]
    assert stream["schema"]["type"] == "string"  # generated clients read text, not JSON
    frames = stream["x-itemSchema"]
    mapping = frames["discriminator"]["mapping"]
    assert set(mapping) == {"state", "message", "status", "end"}
    payloads = {
        kind: resolve(spec, ref)["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        for kind, ref in mapping.items()
    }
    assert payloads == {
        "state": "Chat",
        "message": "Message",
        "status": "UpstreamStatusPayload",
        "end": "EndPayload",
    }
    status = spec["components"]["schemas"]["UpstreamStatusPayload"]["properties"]["upstream"]
    assert set(status["enum"]) == {"ok", "degraded"}


def test_errors_are_documented_as_they_occur(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    for name, (method, path, op) in ops.items():
        statuses = {int(s) for s in op["responses"]}
        if method == "get":
            assert not statuses & {413, 415}, (name, "no bodies on GET")
        if path.startswith("/api/"):
            assert 403 in statuses, name  # any browser from a foreign origin
        if path.startswith(("/api/v2/chats", "/api/v2/me/")):
            assert 503 in statuses, name  # the bus
        for status, response in op["responses"].items():
            if int(status) >= 400 and path.startswith("/api/"):
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }, (name, status)
            if status in ("429", "503"):
                assert response["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert {413, 415, 429} <= {int(s) for s in ops["requestChat"][2]["responses"]}
    assert {409, 413, 415, 429} <= {int(s) for s in ops["operateChat"][2]["responses"]}
    assert 429 in {int(s) for s in ops["chatEvents"][2]["responses"]}  # stream limits
    assert ops["metrics"][2]["responses"]["200"]["content"].keys() == {"text/plain"}


def _models() -> list[type[BaseModel]]:
    return [
        value
        for module in (answers, bodies)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    ]


def test_examples_are_valid_answers(spec: dict[str, Any]) -> None:
    """Every example shown in the docs, of an answer or a body, is an instance of its own
    schema."""
    checked = 0
    for model in _models():
        examples = (model.model_config.get("json_schema_extra") or {}).get("examples", [])
        assert isinstance(examples, list)
        for example in examples:
            model.model_validate(example)
            checked += 1
        if examples:
            assert spec["components"]["schemas"][model.__name__]["examples"] == examples
    assert checked >= 7
