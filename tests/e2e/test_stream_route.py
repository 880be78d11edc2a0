"""The stream endpoint is served by a plain ASGI route (`events.StreamRoute`, lean for
streams that last hours) in front of the FastAPI route that documents it: it must answer
exactly as the documented route would, for every way a client can get it wrong."""

from __future__ import annotations

import httpx
import pytest

from harness.chats import start_chat
from harness.servers import ServerProcess


def first_event(client: httpx.Client, path: str, **kwargs: object) -> tuple[int, str]:
    with client.stream("GET", path, **kwargs) as answer:  # type: ignore[arg-type]
        if answer.status_code != 200:
            answer.read()
            return answer.status_code, answer.text
        return 200, next(answer.iter_lines())


def test_the_stream_and_its_documented_errors(bff: ServerProcess, client: httpx.Client) -> None:
    handle = start_chat(client)
    path = f"/api/v2/chats/{handle}/events"
    assert first_event(client, path) == (200, "event: state")
    assert first_event(client, path + "/") == (200, "event: state")  # trailing slash
    status, body = first_event(client, "/api/v2/chats/not-a-handle/events")
    assert status == 404 and '"statusCode":6' in body.replace(" ", "")
    status, body = first_event(client, path, headers={"Last-Event-ID": "²".encode()})
    assert status == 400 and "Last-Event-ID" in body
    status, _ = first_event(
        client, path, params={"lastEventId": "x"}, headers={"Last-Event-ID": "3"}
    )
    assert status == 400  # each one given must be valid


@pytest.mark.parametrize("method", ["HEAD", "POST", "DELETE"])
def test_other_methods_are_405_with_allow(
    bff: ServerProcess, client: httpx.Client, method: str
) -> None:
    handle = start_chat(client)
    answer = client.request(method, f"/api/v2/chats/{handle}/events")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"


def test_streams_are_counted_under_their_route_template(
    bff: ServerProcess, client: httpx.Client
) -> None:
    handle = start_chat(client)
    assert first_event(client, f"/api/v2/chats/{handle}/events")[0] == 200
    metrics = client.get("/metrics").text
    assert 'bff_http_requests_total{route="/api/v2/chats/{handle}/events",status="200"}' in metrics
    assert "/api/v2/chats/{handle}/events" in client.get("/openapi.json").text  # documented
