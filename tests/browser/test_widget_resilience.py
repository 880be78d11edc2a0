"""A send that fails (or whose answer is lost) is shown as not sent, with a retry that reuses
the message's Idempotency-Key, and ends up in the transcript exactly once. (The "reconnecting"
line when the stream drops is in test_widget_streams.py.)"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, Request, Route, expect

from app.edge.idempotency_keys import parse_key
from app.emulator.agent import REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess
from tests.browser.widget import (
    Widget,
    agent_name,
    log_position,
    operations,
    unique,
    upstream_chat_id,
    upstream_texts,
    wait_until,
)

pytestmark = pytest.mark.browser


def greeted(
    page: Page, bff: ServerProcess, control: EmulatorControl, subject: str
) -> tuple[Widget, str]:
    """A chat started in the widget and greeted by the scripted agent: (widget, upstream id)."""
    widget = Widget(page)
    page.goto(bff.url + "/")
    nickname = unique("Jo")
    widget.start(nickname, subject)
    chat_id = upstream_chat_id(control, nickname)
    widget.expect_text(
        f"Hello {nickname}, my name is {agent_name(control, chat_id)}. How can I help you?"
    )
    return widget, chat_id


def test_a_failed_send_is_retried_with_its_key_and_delivered_once(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    sends: list[tuple[str, str | None]] = []

    def record(request: Request) -> None:
        body = request.post_data or ""
        if request.method == "POST" and '"SendMessage"' in body:
            sends.append((json.loads(body)["text"], request.headers.get("idempotency-key")))

    page.on("request", record)
    widget, chat_id = greeted(page, bff, control, "Flaky network")

    # Typing notices are writes too: let the first one through before the fault is armed.
    since = log_position(control)
    widget.input.fill("Is the tent waterproof?")
    wait_until(
        lambda: "SendStartTypingNotification" in operations(control, chat_id, since),
        "the typing notice to reach the upstream",
    )
    control.faults(error_status=503, routes="write", remaining=1)
    widget.input.press("Enter")
    failed = widget.loc(".cb-failed")
    expect(failed).to_be_visible()
    expect(failed.locator(".cb-bubble")).to_have_text("Is the tent waterproof?")
    expect(failed.get_by_role("alert")).to_have_text("Not sent. Retry")
    assert "Is the tent waterproof?" not in upstream_texts(control, chat_id)

    failed.get_by_role("button", name="Retry").click()
    widget.expect_text("Is the tent waterproof?")
    expect(widget.loc(".cb-failed, .cb-pending")).to_have_count(0)
    widget.expect_text(REPLIES[0])
    widget.send("Thanks!")
    widget.expect_text("Thanks!")

    tries = [key for text, key in sends if text == "Is the tent waterproof?"]
    assert len(tries) == 2 and tries[0] == tries[1]
    assert tries[0] and re.fullmatch(r'"[0-9a-z]{32}"', tries[0])  # an sf-string, as drafted
    assert parse_key(tries[0]) == tries[0].strip('"')  # 128 random bits: the server takes it
    others = [key for text, key in sends if text == "Thanks!"]
    assert len(others) == 1 and others[0] not in tries
    assert upstream_texts(control, chat_id).count("Is the tent waterproof?") == 1
    assert widget.texts() == upstream_texts(control, chat_id)
    assert widget.errors == []


def test_a_send_whose_answer_is_lost_reaches_the_upstream_once(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    """The send reached chat-bff and the upstream, but the answer never came back (a network
    that drops as the phone changes cells): the customer's retry carries the same key, chat-bff
    replays the first answer, and the agent sees the message once."""
    widget, chat_id = greeted(page, bff, control, "Lost answers")

    tries: list[tuple[str | None, str | None]] = []  # (key, Idempotent-Replayed) per attempt

    def lose_the_first_answer(route: Route) -> None:
        request = route.request
        if '"SendMessage"' not in (request.post_data or ""):
            route.continue_()
            return
        answer = route.fetch()  # chat-bff (and the upstream) take the send
        tries.append(
            (request.headers.get("idempotency-key"), answer.headers.get("idempotent-replayed"))
        )
        if len(tries) == 1:
            route.abort("connectionreset")  # ... and the answer is lost on the way back
        else:
            route.fulfill(response=answer)

    page.route("**/api/v2/chats/*", lose_the_first_answer)
    # The echo comes late (slow upstream reads), so the customer sees the send fail first.
    control.faults(latency_ms=2500, routes="read")
    widget.send("Did my refund go through?")
    failed = widget.loc(".cb-failed")
    expect(failed.get_by_role("alert")).to_have_text("Not sent. Retry")
    failed.get_by_role("button", name="Retry").click()
    control.clear_faults()
    widget.expect_text("Did my refund go through?")
    expect(widget.loc(".cb-failed, .cb-pending")).to_have_count(0)

    assert len(tries) == 2, tries
    (first_key, first_replayed), (second_key, second_replayed) = tries
    assert first_key and first_key == second_key
    assert first_replayed is None and second_replayed == "true"
    assert upstream_texts(control, chat_id).count("Did my refund go through?") == 1
    assert widget.texts() == upstream_texts(control, chat_id)
