"""Offline hours and leave-a-message end to end: real chat-bff processes, the emulator, and a
webhook receiver on loopback that checks every signature.

Outside business hours availability says closed (with the next opening) and RequestChat
answers 409 "closed" without reaching the upstream; while the upstream fails it says
unavailable; a message left meanwhile is accepted once stored and reaches the operator's
webhook, signed, retried while the receiver is down.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.webhook_receiver import Delivery, Receiver

ENV = {
    "BFF_WEBHOOK_RETRY_MIN_S": "0.2",
    "BFF_WEBHOOK_RETRY_MAX_S": "1.0",
    "BFF_CHAT_CREATE_PER_MINUTE": "60000",
    "BFF_CHAT_CREATE_BURST": "10000",
}
MESSAGE = {
    "nickname": "Chris",
    "email": "chris@example.com",
    "subject": "Order 1234",
    "text": "My parcel has not arrived.",
    "userData": {"orderId": "1234"},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture
def upstream_control(upstream: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(upstream.url)
    control.clear_faults()
    yield control
    control.clear_faults()
    control.http.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def closed_around_today() -> str:
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=1), today + timedelta(days=1)
    return f"UTC; Mon-Sun 00:00-24:00; closed {first}..{last}"


@pytest.fixture(scope="module")
def closed_bff(upstream: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        upstream.url,
        BFF_BUSINESS_HOURS=closed_around_today(),
        BFF_OFFLINE_WEBHOOK_URL=receiver.url,
        BFF_OFFLINE_WEBHOOK_SECRET=receiver.secret,
        **ENV,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_bff(upstream: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        upstream.url,
        BFF_OFFLINE_WEBHOOK_URL=receiver.url,
        BFF_OFFLINE_WEBHOOK_SECRET=receiver.secret,
        **ENV,
    )
    yield server
    server.stop()


def leave(bff: ServerProcess, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        bff.url + "/api/v2/offline-messages",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


def with_text(deliveries: list[Delivery], text: str) -> list[Delivery]:
    return [d for d in deliveries if d.json()["data"]["text"] == text]


def request_chat(bff: ServerProcess) -> httpx.Response:
    body = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Hi"}
    return httpx.post(bff.url + "/api/v2/chats", json=body, timeout=15)


def test_open_with_no_business_hours_and_a_healthy_upstream(
    open_bff: ServerProcess, upstream_control: EmulatorControl
) -> None:
    assert request_chat(open_bff).status_code == 200
    seen = len(upstream_control.requests())
    for _ in range(5):
        answer = httpx.get(open_bff.url + "/api/v2/availability", timeout=5)
        assert answer.status_code == 200
        assert answer.json() == {"open": True, "reason": None, "nextOpen": None, "statusCode": 0}
        assert answer.headers["cache-control"] == "no-store"
    # Reading availability costs the upstream nothing: only the new chat's poller reads it.
    during = upstream_control.requests()[seen:]
    assert all(r.get("chat_id") and r.get("method") == "GET" for r in during), during


def test_closed_outside_business_hours_and_request_chat_refused_without_upstream(
    closed_bff: ServerProcess, upstream_control: EmulatorControl
) -> None:
    answer = httpx.get(closed_bff.url + "/api/v2/availability", timeout=5).json()
    assert answer["open"] is False and answer["reason"] == "closed"
    today = datetime.now(UTC).date()
    expected = {f"{today + timedelta(days=n)}T00:00:00+00:00" for n in (2, 3)}
    assert answer["nextOpen"] in expected
    assert answer["statusCode"] == 0
    posts = upstream_control.count("POST")
    refused = request_chat(closed_bff)
    assert refused.status_code == 409
    assert refused.json() == {"statusCode": 2, "statusMessage": "closed"}
    assert upstream_control.count("POST") == posts


def test_unavailable_while_the_upstream_fails_and_open_again_after(
    open_bff: ServerProcess, upstream_control: EmulatorControl
) -> None:
    upstream_control.faults(outage=True)
    assert request_chat(open_bff).status_code == 503
    before = upstream_control.count()
    answer = httpx.get(open_bff.url + "/api/v2/availability", timeout=5).json()
    assert answer == {"open": False, "reason": "unavailable", "nextOpen": None, "statusCode": 0}
    assert upstream_control.count() == before  # no upstream call of its own
    upstream_control.clear_faults()
    assert request_chat(open_bff).status_code == 200
    answer = httpx.get(open_bff.url + "/api/v2/availability", timeout=5).json()
    assert answer["open"] is True


def test_a_left_message_reaches_the_webhook_signed(
    closed_bff: ServerProcess, receiver: Receiver
) -> None:
    text = f"parcel {time.monotonic()}"
    answer = leave(closed_bff, {**MESSAGE, "text": text})
    assert answer.status_code == 202
    assert answer.json() == {"statusCode": 0}
    (delivery,) = with_text(receiver.wait_for(lambda ds: bool(with_text(ds, text))), text)
    assert delivery.verified and delivery.status == 200
    body = delivery.json()
    assert body["type"] == "offline.message"
    assert body["data"] == {**MESSAGE, "text": text}
    assert delivery.msg_id.startswith("msg_")
    # Without subject and userData: null and {}.
    bare = {"nickname": "Sam", "email": "sam@example.org", "text": f"bare {text}"}
    assert leave(closed_bff, bare).status_code == 202
    seen = receiver.wait_for(lambda ds: bool(with_text(ds, bare["text"])))
    assert with_text(seen, bare["text"])[0].json()["data"] == {
        **bare,
        "subject": None,
        "userData": {},
    }


def test_idempotency_key_stores_a_retry_once(closed_bff: ServerProcess, receiver: Receiver) -> None:
    text = f"once {time.monotonic()}"
    body = {**MESSAGE, "text": text}
    key = str(uuid.uuid4())
    for spelled in (key, f'"{key}"', key):  # quoted or bare: one key (one parser)
        assert leave(closed_bff, body, **{"Idempotency-Key": spelled}).status_code == 202
    # The same key with another body is refused (the Idempotency-Key contract,
    # app/edge/idempotency.py) and leaves nothing.
    other = {**MESSAGE, "text": text, "subject": "another"}
    assert leave(closed_bff, other, **{"Idempotency-Key": key}).status_code == 400
    receiver.wait_for(lambda ds: len(with_text(ds, text)) >= 1)
    time.sleep(1.5)
    assert [d.json()["data"]["subject"] for d in with_text(receiver.all(), text)] == ["Order 1234"]
    # Without a key, each request is a message of its own.
    plain = f"twice {time.monotonic()}"
    for _ in range(2):
        assert leave(closed_bff, {**MESSAGE, "text": plain}).status_code == 202
    receiver.wait_for(lambda ds: len(with_text(ds, plain)) == 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**MESSAGE, "nickname": ""}, "nickname"),
        ({k: v for k, v in MESSAGE.items() if k != "nickname"}, "nickname"),
        ({**MESSAGE, "email": "not-an-email"}, "email"),
        ({**MESSAGE, "email": "chris@"}, "email"),
        ({**MESSAGE, "email": "x" * 250 + "@example.com"}, "email"),
        ({**MESSAGE, "text": "   "}, "text"),
        ({**MESSAGE, "text": "x" * 4001}, "text"),
        ({**MESSAGE, "text": "bell\x07"}, "text"),
        ({**MESSAGE, "subject": "s" * 257}, "subject"),
        ({**MESSAGE, "userData": {"k": 1}}, "userData"),
        ({**MESSAGE, "userData": {f"k{i}": "v" for i in range(33)}}, "userData"),
        ([MESSAGE], "body"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_delivered(
    closed_bff: ServerProcess, receiver: Receiver, body: Any, field: str
) -> None:
    before = len(receiver.all())
    answer = leave(closed_bff, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["statusCode"] in (1, 10)
    assert field in answer.json()["statusMessage"]
    time.sleep(0.3)
    assert len(receiver.all()) == before


def test_not_json_and_a_bad_idempotency_key_are_refused(closed_bff: ServerProcess) -> None:
    answer = httpx.post(
        closed_bff.url + "/api/v2/offline-messages", content=b"nickname=x", timeout=5
    )
    assert answer.status_code == 415
    for bad in ("k" * 256, "k-1", "with spaces but long enough to pass"):
        refused = leave(closed_bff, MESSAGE, **{"Idempotency-Key": bad})
        assert refused.status_code == 400
        assert "UUID or 22 to 255 characters" in refused.json()["statusMessage"]


def test_a_closed_409_is_not_kept(
    closed_bff: ServerProcess, upstream_control: EmulatorControl
) -> None:
    """RequestChat refused outside business hours is an answer of the moment, not a final
    one: the key is not kept (before issue 18, the same key with another body was then
    "already used", and the same body replayed "closed" for an hour, opening hours or not)."""
    key = str(uuid.uuid4())
    for subject in ("first", "second"):
        refused = httpx.post(
            closed_bff.url + "/api/v2/chats",
            json={"operationName": "RequestChat", "nickname": "Chris", "subject": subject},
            headers={"Idempotency-Key": key},
            timeout=5,
        )
        assert refused.status_code == 409, refused.text
        assert refused.json() == {"statusCode": 2, "statusMessage": "closed"}
        assert "idempotent-replayed" not in refused.headers


def test_without_an_offline_webhook_leaving_a_message_is_unavailable(
    client: httpx.Client,
) -> None:
    """The operator left it off: 503, and no Retry-After (retrying cannot help)."""
    answer = client.post("/api/v2/offline-messages", json=MESSAGE)
    assert answer.status_code == 503
    assert answer.json()["statusCode"] == 12
    assert "Retry-After" not in answer.headers


def test_a_receiver_down_for_a_while_gets_the_message_when_it_is_back(
    upstream: ServerProcess,
) -> None:
    down = Receiver()  # not started: its port refuses connections
    bff = start_bff(
        upstream.url,
        BFF_OFFLINE_WEBHOOK_URL=down.url,
        BFF_OFFLINE_WEBHOOK_SECRET=down.secret,
        BFF_OFFLINE_OUTBOX_MAX="10",
        **ENV,
    )
    try:
        texts = [f"message {n}" for n in range(10)]
        for text in texts:
            assert leave(bff, {**MESSAGE, "text": text}).status_code == 202
        # The outbox is full: the next one is refused, not lost silently, and not invited
        # back in two seconds (nothing frees room but deliveries or dead letters).
        full = leave(bff, {**MESSAGE, "text": "one too many"})
        assert full.status_code == 507 and "Retry-After" not in full.headers
        assert full.json()["statusCode"] == 13
        time.sleep(4)  # several refused attempts
        assert "ConnectError" in bff.logs()
        with down:
            down.wait_for(lambda ds: len(ds) >= 10, timeout_s=15)
            time.sleep(1.5)
            delivered = down.all()
            assert sorted(d.json()["data"]["text"] for d in delivered) == texts
            assert all(d.verified and d.status == 200 for d in delivered)
        assert leave(bff, {**MESSAGE, "text": "room again"}).status_code == 202
        # Failed and successful deliveries alike are logged without the webhook's secret, its
        # URL or what the customer left (docs/SECURITY.md).
        logs = bff.logs()
        for private in (down.secret, down.secret.removeprefix("whsec_"), down.url):
            assert private not in logs
        assert MESSAGE["email"] not in logs and MESSAGE["nickname"] not in logs
    finally:
        bff.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "nickname": json_values | st.text(max_size=80),
            "email": st.emails() | st.text(max_size=40) | json_values,
            "text": st.text(max_size=200) | json_values,
            "subject": st.text(max_size=300) | json_values,
            "userData": st.dictionaries(st.text(max_size=70), st.text(max_size=20), max_size=40)
            | json_values,
        },
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_fuzzed_bodies_get_202_or_400_never_anything_else(
    closed_bff: ServerProcess, body: Any
) -> None:
    answer = leave(closed_bff, body)
    assert answer.status_code in (202, 400), (answer.status_code, answer.text)
    assert set(answer.json()) <= {"statusCode", "statusMessage"}
