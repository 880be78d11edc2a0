"""Waiting for an agent and ending a chat, as the customer sees them: the subject shown at once,
a waiting card that counts the wait and follows the customer from page to page, a clear word
when the wait ends without anyone, End with a confirmation, and one ended view with a
transcript to download.

The scripted agent of this module's emulator never joins by itself: the tests make it join,
speak and leave through the emulator's control API, so every step happens when they say."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess
from tests.browser.widget import Widget, unique, upstream_chat_id

pytestmark = pytest.mark.browser


def visible_text(widget: Widget) -> str:
    return widget.loc(".cb-panel").inner_text()


def test_waiting_card_counts_the_wait_and_follows_the_customer(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    nickname = unique("Ada")
    widget.start(nickname, "Where is my parcel?")

    # At once: the question as the customer's first message, and a card that says what happens.
    expect(widget.loc(".cb-subject .cb-bubble")).to_have_text("Where is my parcel?")
    expect(widget.loc(".cb-sub-text")).to_have_text("Waiting for an agent…")
    card = widget.loc(".cb-wait")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Someone from our team will be with you shortly.")
    expect(card).to_contain_text("You can keep browsing: this chat follows you from page to page.")
    expect(widget.loc(".cb-live")).to_be_visible()
    waited = widget.loc(".cb-waited")
    expect(waited).to_have_text(re.compile(r"^Waiting for [0-9] seconds?$"))
    expect(waited).to_have_text(re.compile(r"^Waiting for [2-9] seconds$"))

    # Another page of the site: the chat, the question and the count come along.
    page.goto(held_bff.url + "/?page=2")
    expect(widget.loc(".cb-panel")).to_be_visible()
    expect(widget.loc(".cb-subject .cb-bubble")).to_have_text("Where is my parcel?")
    expect(waited).to_have_text(re.compile(r"^Waiting for ([3-9]|[1-5][0-9]) seconds$"))

    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    agent = held.chat(chat_id)["agent"]
    expect(widget.loc(".cb-sub-text")).to_have_text(f"Chatting with {agent}")
    expect(card).to_be_hidden()
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    assert widget.errors == []


def test_a_wait_that_ends_without_an_agent_says_so_and_offers_a_message(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    nickname = unique("Bo")
    widget.start(nickname, "Can I change my address?")
    expect(widget.loc(".cb-wait")).to_be_visible()
    chat_id = upstream_chat_id(held, nickname)

    held.http.post(f"/chats/{chat_id}/disconnect").raise_for_status()
    ended = widget.loc(".cb-ended")
    expect(ended).to_have_text("Sorry, no one from our team could take your chat this time.")
    expect(widget.loc(".cb-wait")).to_be_hidden()
    assert "This chat has ended" not in visible_text(widget)
    expect(page.get_by_role("button", name="Download transcript")).to_be_visible()
    expect(page.get_by_role("button", name="Start a new chat")).to_be_focused()

    # Leaving a message instead keeps what the customer already wrote.
    page.get_by_role("button", name="Leave a message").click()
    expect(widget.loc(".cb-intro").first).to_have_text(
        "Our chat is unavailable right now. Leave us a message and we'll reply by e-mail."
    )
    expect(widget.loc("#cb-f-nickname")).to_have_value(nickname)
    expect(page.get_by_label("Your message")).to_have_value("Can I change my address?")
    email = widget.loc("#cb-f-email")
    expect(email).to_be_visible()
    expect(email).to_be_focused()
    assert email.evaluate("el => el.required") is True
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    assert widget.errors == []


def test_end_asks_first_then_one_ended_view_with_the_transcript(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    nickname = unique("Cy")
    widget.start(nickname, "Return a jacket")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    agent = held.chat(chat_id)["agent"]
    greeting = f"Hello {nickname}, my name is {agent}. How can I help you?"
    widget.expect_text(greeting)
    widget.send("It is too small.")
    widget.expect_text("It is too small.")

    # End asks first; keeping on chatting (button or Escape) changes nothing.
    widget.loc(".cb-end").click()
    ask = page.get_by_role("group", name="End this chat?")
    expect(ask).to_be_visible()
    expect(widget.input).to_be_hidden()
    expect(ask.get_by_role("button", name="Keep chatting")).to_be_focused()
    ask.get_by_role("button", name="Keep chatting").click()
    expect(widget.input).to_be_focused()
    widget.loc(".cb-end").click()
    page.keyboard.press("Escape")
    expect(ask).to_be_hidden()
    expect(widget.loc(".cb-panel")).to_be_visible()
    assert held.chat(chat_id)["state"] == "Chatting"

    widget.end_chat()
    expect(widget.loc(".cb-sys").filter(has_text="You left the chat")).to_have_count(1)
    assert visible_text(widget).count("This chat has ended") == 1
    assert "mail" not in visible_text(widget)  # no e-mail given, no e-mail promised

    # The transcript, built in the browser from what it has.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download transcript").click()
    assert re.fullmatch(r"chat-\d{4}-\d{2}-\d{2}\.txt", download.value.suggested_filename)
    path = download.value.path()
    transcript = path.read_text(encoding="utf-8-sig")
    lines = transcript.splitlines()
    assert lines[0].startswith("Alder & Pine support · ")
    assert "You: Return a jacket" in lines
    assert any(line.endswith(f"] {agent}: {greeting}") for line in lines)
    assert any(line.endswith("] You: It is too small.") for line in lines)
    assert any(line.endswith("You left the chat") for line in lines)
    assert "mail" not in transcript

    page.get_by_role("button", name="Start a new chat").click()
    expect(widget.loc("#cb-f-nickname")).to_be_focused()
    expect(widget.loc("#cb-f-nickname")).to_have_value("")
    expect(widget.loc(".cb-log > li")).to_have_count(0)
    expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    assert widget.errors == []


def test_an_email_given_keeps_the_platforms_email_notice(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    nickname = unique("Di")
    widget.start(nickname, "Invoice copy", email="di@example.com")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    notice = widget.loc(".cb-sys").filter(has_text="Chat transcript will be sent by e-mail")
    expect(notice).to_be_visible()
    assert widget.errors == []
