"""Sends that never double: a POST with an Idempotency-Key, retried after its answer was lost,
gets the first answer again and reaches the upstream once, on one instance or across a fleet
on one Redis."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat, wait_for
from harness.emulator import EmulatorControl
from harness.redis import RedisServer
from harness.servers import ServerProcess, start_bff
from tests.components import missing_component

OK_CHAT = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Help"}


def upstream_id_of(control: EmulatorControl) -> str:
    """The chat created last (the request log's last chat may be another chat's poll)."""
    chats = control.http.get("/chats").json()["chats"]
    return str(chats[-1]["id"])


def times_in_transcript(control: EmulatorControl, upstream_id: str, text: str) -> int:
    transcript = control.chat(upstream_id)["transcript"]
    assert isinstance(transcript, list)
    return sum(1 for m in transcript if m.get("type") == "Text" and m.get("text") == text)


def sends_upstream(control: EmulatorControl, upstream_id: str, text: str) -> int:
    return sum(
        1
        for r in control.requests()
        if r["method"] == "POST" and r.get("chat_id") == upstream_id and text in str(r["body"])
    )


def send(
    client: httpx.Client, handle: str, text: str, key: str | None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/api/v2/chats/{handle}",
        json={"operationName": "SendMessage", "text": text},
        headers=headers,
    )


def send_and_hang_up(
    port: int, handle: str, text: str, key: str, control: EmulatorControl, upstream_id: str
) -> None:
    """A send whose answer is lost: the connection drops once the upstream has the message,
    before chat-bff could answer."""
    body = json.dumps({"operationName": "SendMessage", "text": text}).encode()
    head = (
        f"POST /api/v2/chats/{handle} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        wait_for(lambda: sends_upstream(control, upstream_id, text), what="the upstream send")
    # Closed without reading a byte of the answer.


def retry_until_answered(client: httpx.Client, handle: str, text: str, key: str) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        answer = send(client, handle, text, key)
        if answer.status_code != 409:
            return answer
        assert answer.json()["statusCode"] == 2
        assert int(answer.headers["Retry-After"]) >= 1
        assert time.monotonic() < deadline, "still in flight after 15 s"
        time.sleep(0.2)


def test_a_retry_replays_the_first_answer_and_sends_once(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    key = str(uuid.uuid4())
    first = send(client, handle, "exactly once", key)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    again = send(client, handle, "exactly once", key)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["cache-control"] == "no-store"
    assert sends_upstream(control, upstream_id, "exactly once") == 1
    assert times_in_transcript(control, upstream_id, "exactly once") == 1
    # The same key for a different request is refused, and sends nothing.
    other = send(client, handle, "something else", key)
    assert other.status_code == 400, other.text
    assert other.json()["statusCode"] == 10
    assert "Idempotency-Key" in other.json()["statusMessage"]
    assert sends_upstream(control, upstream_id, "something else") == 0
    # Without a key, a repeat is a new message, as before.
    assert send(client, handle, "twice", None).status_code == 200
    assert send(client, handle, "twice", None).status_code == 200
    assert times_in_transcript(control, upstream_id, "twice") == 2


def test_a_send_whose_answer_was_lost_is_retried_and_kept_once(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    key = str(uuid.uuid4())
    control.faults(latency_ms=800, routes="write")
    send_and_hang_up(bff.port, handle, "lost answer", key, control, upstream_id)
    answer = retry_until_answered(client, handle, "lost answer", key)
    assert answer.status_code == 200, answer.text
    assert answer.headers["idempotent-replayed"] == "true"
    control.clear_faults()
    assert sends_upstream(control, upstream_id, "lost answer") == 1
    assert times_in_transcript(control, upstream_id, "lost answer") == 1


def test_request_chat_with_a_key_creates_one_chat(
    client: httpx.Client, control: EmulatorControl
) -> None:
    key = str(uuid.uuid4())
    before = control.count("POST")
    first = client.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
    again = client.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert control.count("POST") - before == 1


def test_an_answer_that_changed_nothing_is_not_kept(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    key = str(uuid.uuid4())
    control.faults(outage=True, routes="write", remaining=1)
    failed = send(client, handle, "after an outage", key)
    assert failed.status_code == 503
    answer = send(client, handle, "after an outage", key)
    assert answer.status_code == 200, answer.text
    assert "idempotent-replayed" not in answer.headers
    assert times_in_transcript(control, upstream_id, "after an outage") == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"a b",
        b'"unterminated',
        b"caf\xc3\xa9",
        b"x" * 300,
        b'"a\\b"',
        b"a,b",
        # Well-formed but guessable: another client could present it (issue 18).
        b"1",
        b"k-1234",
        b'"k-1234"',
        b"x" * 21,
    ],
)
def test_a_malformed_or_weak_key_is_400(
    client: httpx.Client, control: EmulatorControl, raw: bytes
) -> None:
    handle = start_chat(client)
    before = control.count("POST")
    answer = client.post(
        f"/api/v2/chats/{handle}",
        json={"operationName": "SendMessage", "text": "x"},
        headers=[("Idempotency-Key", raw)],
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["statusCode"] == 10
    assert "UUID or 22 to 255 characters" in answer.json()["statusMessage"]
    assert control.count("POST") == before


def test_quoted_and_bare_keys_are_the_same_key(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    upstream_id = upstream_id_of(control)
    key = "quoted-and-bare-" + uuid.uuid4().hex[:12]
    assert send(client, handle, "quoted", f'"{key}"').status_code == 200
    assert send(client, handle, "quoted", key).headers["idempotent-replayed"] == "true"
    assert times_in_transcript(control, upstream_id, "quoted") == 1


def another_client(base_url: str) -> httpx.Client:
    """A client from another address (127.0.0.2, loopback too): another client for every
    per-IP limit, and for Idempotency-Keys."""
    return httpx.Client(
        base_url=base_url, timeout=15, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )


def test_another_client_presenting_a_key_gets_its_own_chat(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    """Issue 18: B sends RequestChat with A's key and A's body. Keys are the client's own, so
    B's request is a first request of B's: B gets a chat of its own (a fresh one, not a 400 or
    409: B did nothing wrong, and telling B that the key is taken would say that someone used
    it), and never A's handle, a bearer credential. A's retry still replays A's chat."""
    key = str(uuid.uuid4())
    before = control.count("POST")
    first = client.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    with another_client(bff.url) as b:
        theirs = b.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
        assert theirs.status_code == 200, theirs.text
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["id"] != first.json()["id"]
        again = b.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
        assert again.json()["id"] == theirs.json()["id"]  # B's own retry replays B's chat
    mine = client.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
    assert mine.headers["idempotent-replayed"] == "true"
    assert mine.json()["id"] == first.json()["id"]
    assert control.count("POST") - before == 2


def test_answers_before_the_routes_limits_are_not_kept(
    client: httpx.Client, control: EmulatorControl
) -> None:
    """A 400 for a bad body comes before any limit: kept, it would be a free entry in the
    store for anyone. The same key then works for the corrected body (on the code before
    issue 18, it was "already used for a different request")."""
    key = str(uuid.uuid4())
    bad = client.post(
        "/api/v2/chats", json={"operationName": "RequestChat"}, headers={"Idempotency-Key": key}
    )
    assert bad.status_code == 400, bad.text
    good = client.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
    assert good.status_code == 200, good.text
    assert "idempotent-replayed" not in good.headers
    # An unknown handle: 404 before the send limit, not kept either.
    missing = "/api/v2/chats/" + "A" * 60
    key = str(uuid.uuid4())
    body = {"operationName": "SendMessage", "text": "a"}
    assert client.post(missing, json=body, headers={"Idempotency-Key": key}).status_code == 404
    other = client.post(missing, json={**body, "text": "b"}, headers={"Idempotency-Key": key})
    assert other.status_code == 404, other.text


def test_an_unrouted_path_stores_nothing(client: httpx.Client) -> None:
    """A POST with a key to a path no route takes goes to the router untouched (404/405):
    the same key with another body is not "already used" (it was, and kept an hour, before
    issue 18)."""
    key = str(uuid.uuid4())
    for body in ({"a": 1}, {"a": 2}):
        answer = client.post("/api/v2/chats/x/y/z", json=body, headers={"Idempotency-Key": key})
        assert answer.status_code == 404, answer.text
        assert "idempotent-replayed" not in answer.headers
    for body in ({"a": 1}, {"a": 2}):
        answer = client.post("/api/v2/availability", json=body, headers={"Idempotency-Key": key})
        assert answer.status_code == 405, answer.text


# -- across a fleet on one Redis ------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(emulator: ServerProcess) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    try:
        redis = RedisServer().start()
    except FileNotFoundError:
        missing_component("redis-server is not installed")
    a = start_bff(emulator.url, BFF_REDIS_URL=redis.url, BFF_SEND_BURST="1000")
    b = start_bff(emulator.url, BFF_REDIS_URL=redis.url, BFF_SEND_BURST="1000")
    yield a, b
    a.stop()
    b.stop()
    redis.stop()


def test_a_lost_answer_retried_on_another_instance_is_sent_once(
    pair: tuple[ServerProcess, ServerProcess], control: EmulatorControl
) -> None:
    a, b = pair
    with (
        httpx.Client(base_url=a.url, timeout=15) as on_a,
        httpx.Client(base_url=b.url, timeout=15) as on_b,
    ):
        handle = start_chat(on_a)
        upstream_id = upstream_id_of(control)
        key = str(uuid.uuid4())
        control.faults(latency_ms=1000, routes="write")
        send_and_hang_up(a.port, handle, "fleet lost answer", key, control, upstream_id)
        # While A still waits for the upstream, B refuses the retry as in flight.
        in_flight = send(on_b, handle, "fleet lost answer", key)
        assert in_flight.status_code == 409, in_flight.text
        answer = retry_until_answered(on_b, handle, "fleet lost answer", key)
        assert answer.status_code == 200, answer.text
        assert answer.headers["idempotent-replayed"] == "true"
        control.clear_faults()
        assert send(on_a, handle, "fleet lost answer", key).headers["idempotent-replayed"]
    assert sends_upstream(control, upstream_id, "fleet lost answer") == 1
    assert times_in_transcript(control, upstream_id, "fleet lost answer") == 1


def test_another_client_on_another_instance_gets_its_own_chat(
    pair: tuple[ServerProcess, ServerProcess], control: EmulatorControl
) -> None:
    """The same as on one instance, across a fleet on Redis: A's key presented by B to the
    other instance is B's own key there too."""
    a, b = pair
    key = str(uuid.uuid4())
    before = control.count("POST")
    with httpx.Client(base_url=a.url, timeout=15) as on_a, another_client(b.url) as on_b:
        first = on_a.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        theirs = on_b.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
        assert theirs.status_code == 200, theirs.text
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["id"] != first.json()["id"]
        with httpx.Client(base_url=b.url, timeout=15) as a_on_b:
            mine = a_on_b.post("/api/v2/chats", json=OK_CHAT, headers={"Idempotency-Key": key})
        assert mine.headers["idempotent-replayed"] == "true"
        assert mine.json()["id"] == first.json()["id"]
    assert control.count("POST") - before == 2
