"""Post-chat surveys end to end: a real chat-bff process, the emulator, and a webhook receiver
on loopback that checks every signature with the `standardwebhooks` library.

A survey is taken for a chat that is over for the customer (they completed it a moment ago,
or the contact center ended it), once per chat, validated; it reaches the operator's webhook
signed, with what the operator needs and nothing of the upstream or the transcript. The
attacker's side: many surveys for one chat (concurrently, with and without keys), surveys for
live chats, forged handles and bad bodies leave one survey, no marker, and a count in
`bff_surveys_total`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.webhook_receiver import Delivery, Receiver

ENV = {
    "BFF_WEBHOOK_RETRY_MIN_S": "0.2",
    "BFF_WEBHOOK_RETRY_MAX_S": "1.0",
    "BFF_CHAT_CREATE_PER_MINUTE": "60000",
    "BFF_CHAT_CREATE_BURST": "10000",
    "BFF_SEND_PER_MINUTE": "60000",
    "BFF_SEND_BURST": "10000",
    "BFF_POLL_FLOOR_S": "0.2",
    "BFF_POLL_CEILING_S": "0.3",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600")
    yield server
    server.stop()


@pytest.fixture
def agent(upstream: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(upstream.url)
    yield control
    control.http.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def surveying_bff(upstream: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        upstream.url,
        BFF_SURVEY_WEBHOOK_URL=receiver.url,
        BFF_SURVEY_WEBHOOK_SECRET=receiver.secret,
        **ENV,
    )
    yield server
    server.stop()


def chat_with_an_agent(bff: ServerProcess, agent: EmulatorControl) -> tuple[str, str]:
    """(handle, upstream id): a chat the agent joined, with two messages each way."""
    body = {"operationName": "RequestChat", "nickname": "Chris", "subject": "Order 1234"}
    answer = httpx.post(bff.url + "/api/v2/chats", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    handle = str(answer.json()["id"])
    upstream_id = next(str(r["chat_id"]) for r in reversed(agent.requests()) if r.get("chat_id"))
    agent.http.post(f"/chats/{upstream_id}/agent/join", json={"greet": True}).raise_for_status()
    agent.agent_say(upstream_id, "It left our warehouse today.")
    for text in ("Where is my parcel?", "Thanks!"):
        say(bff, handle, text)
    return handle, upstream_id


def say(bff: ServerProcess, handle: str, text: str) -> None:
    body = {"operationName": "SendMessage", "text": text}
    httpx.post(f"{bff.url}/api/v2/chats/{handle}", json=body, timeout=10).raise_for_status()


def complete(bff: ServerProcess, handle: str) -> None:
    body = {"operationName": "Complete"}
    httpx.post(f"{bff.url}/api/v2/chats/{handle}", json=body, timeout=10).raise_for_status()


def rate(bff: ServerProcess, handle: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{bff.url}/api/v2/chats/{handle}/survey", json=body, headers=headers, timeout=10
    )


def of_chat(receiver: Receiver, handle: str) -> list[Delivery]:
    return [
        d
        for d in receiver.all()
        if d.json()["type"] == "chat.survey" and d.json()["data"]["chat"] == handle
    ]


def surveys(bff: ServerProcess, outcome: str) -> float:
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    found = re.search(rf'^bff_surveys_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    assert found, f"bff_surveys_total{{outcome={outcome!r}}} missing"
    return float(found.group(1))


def test_a_customer_who_pressed_end_rates_at_once_and_the_operator_gets_it_once(
    surveying_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = chat_with_an_agent(surveying_bff, agent)
    agent_name = str(agent.chat(upstream_id)["agent"])
    complete(surveying_bff, handle)
    # At once, before the chat's poller has seen the end: the customer completed it.
    answer = rate(
        surveying_bff,
        handle,
        {"rating": 4, "comment": "Quick and kind.\nThanks!"},
        **{"Idempotency-Key": '"5f0c1f4e-9a57-4c39-8c4e-2b1b7b8f3a11"'},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"statusCode": 0}
    assert answer.headers["cache-control"] == "no-store"

    receiver.wait_for(lambda _: bool(of_chat(receiver, handle)))
    (delivery,) = of_chat(receiver, handle)
    assert delivery.verified and delivery.status == 200
    notice = delivery.json()
    assert notice["type"] == "chat.survey"
    data = notice["data"]
    assert data["chat"] == handle
    assert data["rating"] == 4
    assert data["comment"] == "Quick and kind.\nThanks!"
    assert data["agents"] == [agent_name]
    assert data["messages"] == {"customer": 2, "agent": 2, "other": 0}
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(iso, data["startedAt"]) and re.fullmatch(iso, data["endedAt"])
    assert data["startedAt"] <= data["endedAt"]
    # Nothing of the upstream, nothing anyone wrote in the chat.
    raw = delivery.body.decode()
    assert upstream_id not in raw
    for text in ("Where is my parcel?", "It left our warehouse", "Order 1234"):
        assert text not in raw

    # The same request again (a lost answer): the first answer, nothing new stored.
    again = rate(
        surveying_bff,
        handle,
        {"rating": 4, "comment": "Quick and kind.\nThanks!"},
        **{"Idempotency-Key": '"5f0c1f4e-9a57-4c39-8c4e-2b1b7b8f3a11"'},
    )
    assert again.status_code == 202 and again.headers.get("idempotent-replayed") == "true"
    # Another survey for the chat: 409, whatever it says.
    second = rate(surveying_bff, handle, {"rating": 1})
    assert second.status_code == 409
    assert second.json() == {
        "statusCode": 2,
        "statusMessage": "This chat has its survey already",
    }
    time.sleep(1.5)
    assert len(of_chat(receiver, handle)) == 1


def test_a_chat_the_agent_ended_is_rated_once_its_end_is_seen(
    surveying_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, upstream_id = chat_with_an_agent(surveying_bff, agent)
    agent.http.post(f"/chats/{upstream_id}/agent/leave").raise_for_status()

    def ended() -> bool:
        state = httpx.get(f"{surveying_bff.url}/api/v2/chats/{handle}", timeout=5).json()
        return bool(state["chat"]["state"] == "Idle")

    deadline = time.monotonic() + 10
    while not ended():
        assert time.monotonic() < deadline, "the chat's end never reached the cache"
        time.sleep(0.1)
    assert rate(surveying_bff, handle, {"rating": 2}).status_code == 202
    receiver.wait_for(lambda _: bool(of_chat(receiver, handle)))
    (delivery,) = of_chat(receiver, handle)
    assert delivery.json()["data"]["comment"] is None
    assert delivery.json()["data"]["rating"] == 2


def test_a_live_chat_cannot_be_rated(
    surveying_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, _ = chat_with_an_agent(surveying_bff, agent)
    live = surveys(surveying_bff, "live")
    for _ in range(3):
        answer = rate(surveying_bff, handle, {"rating": 5})
        assert answer.status_code == 409
        assert answer.json()["statusMessage"] == "The chat has not ended"
    assert surveys(surveying_bff, "live") == live + 3
    # No marker was left behind: once over, the chat takes its survey.
    complete(surveying_bff, handle)
    assert rate(surveying_bff, handle, {"rating": 5}).status_code == 202


BAD_BODIES: list[tuple[Any, str]] = [
    ({}, "rating: is required"),
    ({"rating": 0}, "rating"),
    ({"rating": 6}, "rating"),
    ({"rating": "5"}, "rating"),
    ({"rating": 4.5}, "rating"),
    ({"rating": True}, "rating"),
    ({"rating": None}, "rating"),
    ({"rating": 3, "comment": "x" * 1001}, "comment"),
    ({"rating": 3, "comment": 7}, "comment"),
    ({"rating": 3, "comment": "bell \x07"}, "comment"),
    ({"rating": 3, "stars": 3}, "stars"),
    ([3], "body"),
]


def test_bad_input_is_refused_with_the_upstream_error_shape(
    surveying_bff: ServerProcess, agent: EmulatorControl
) -> None:
    handle, _ = chat_with_an_agent(surveying_bff, agent)
    complete(surveying_bff, handle)
    for body, where in BAD_BODIES:
        answer = rate(surveying_bff, handle, body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()
        assert set(error) == {"statusCode", "statusMessage"}
        assert error["statusCode"] in (1, 10)
        assert where in error["statusMessage"], (body, error)
    not_json = httpx.post(
        f"{surveying_bff.url}/api/v2/chats/{handle}/survey",
        content=b"rating=5",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert not_json.status_code == 415
    # A forged handle is no chat; none of that took the chat's one survey.
    assert rate(surveying_bff, handle[:-2] + "AA", {"rating": 5}).status_code == 404
    assert rate(surveying_bff, handle, {"rating": 3, "comment": "x" * 1000}).status_code == 202


def test_many_surveys_at_once_for_one_chat_take_one(
    surveying_bff: ServerProcess, receiver: Receiver, agent: EmulatorControl
) -> None:
    handle, _ = chat_with_an_agent(surveying_bff, agent)
    complete(surveying_bff, handle)
    duplicates = surveys(surveying_bff, "duplicate")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: rate(surveying_bff, handle, {"rating": n % 5 + 1}), range(24))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] + [409] * 23
    assert surveys(surveying_bff, "duplicate") == duplicates + 23
    receiver.wait_for(lambda _: bool(of_chat(receiver, handle)))
    time.sleep(1.5)
    assert len(of_chat(receiver, handle)) == 1


def test_without_a_survey_webhook_surveys_are_unavailable(
    upstream: ServerProcess, agent: EmulatorControl
) -> None:
    server = start_bff(upstream.url, **ENV)
    try:
        handle, _ = chat_with_an_agent(server, agent)
        complete(server, handle)
        answer = rate(server, handle, {"rating": 5})
        assert answer.status_code == 503
        assert "retry-after" not in answer.headers  # the operator left it off
        assert answer.json()["statusCode"] == 12
    finally:
        server.stop()


def test_surveys_count_against_the_client_ips_send_limit(
    upstream: ServerProcess, receiver: Receiver
) -> None:
    """A client that hammers the route is refused before anything is looked up or held."""
    server = start_bff(
        upstream.url,
        BFF_SURVEY_WEBHOOK_URL=receiver.url,
        BFF_SURVEY_WEBHOOK_SECRET=receiver.secret,
        BFF_SEND_PER_MINUTE="1",
        BFF_SEND_BURST="3",
    )
    try:
        body = {"operationName": "RequestChat", "nickname": "Ivy", "subject": "Limits"}
        handle = httpx.post(server.url + "/api/v2/chats", json=body, timeout=10).json()["id"]
        statuses = [rate(server, handle, {"rating": 5}).status_code for _ in range(5)]
        assert statuses[:3] == [409, 409, 409]  # a live chat: refused, nothing held
        assert statuses[3:] == [429, 429]
        limited = rate(server, handle, {"rating": 5})
        assert limited.json()["statusCode"] == 3 and int(limited.headers["retry-after"]) > 0
    finally:
        server.stop()
