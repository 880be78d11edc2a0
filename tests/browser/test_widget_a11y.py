"""An axe-core audit of the demo page with the widget in every state a customer meets:
closed, the start form, waiting, chatting, asked to confirm the end, ended, and the
leave-a-message form (here reached because the contact center is down; outside opening hours
and after sending it in test_widget_offline.py). Zero violations."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess
from tests.browser.widget import Widget, audit, unique, upstream_chat_id

pytestmark = pytest.mark.browser


def test_every_state_passes_axe(page: Page, held_bff: ServerProcess, held: EmulatorControl) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    expect(widget.loc(".cb-launcher")).to_be_visible()
    audit(page, "closed")
    widget.open()
    audit(page, "start form")

    nickname = unique("Nia")
    widget.start(nickname, "Accessible?")
    expect(widget.loc(".cb-wait")).to_be_visible()
    audit(page, "waiting")

    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    held.agent_say(chat_id, "Here is a link: https://example.com/help")
    widget.send("Thanks")
    widget.expect_text("Thanks")
    held.http.post(f"/chats/{chat_id}/agent/typing", json={"typing": True}).raise_for_status()
    expect(widget.loc(".cb-typing")).to_be_visible()
    audit(page, "chatting")

    widget.loc(".cb-end").click()
    expect(page.get_by_role("group", name="End this chat?")).to_be_visible()
    audit(page, "confirming the end")
    page.get_by_role("group").get_by_role("button", name="End chat").click()
    expect(widget.loc(".cb-ended")).to_be_visible()
    audit(page, "ended")

    # The contact center is down: starting a chat offers to leave a message instead.
    page.get_by_role("button", name="Start a new chat").click()
    held.faults(outage=True)
    try:
        widget.loc("#cb-f-nickname").fill(unique("Nia"))
        widget.loc("#cb-f-subject").fill("Still there?")
        widget.loc("#cb-f-nickname").press("Enter")
        expect(page.get_by_role("button", name="Send message")).to_be_visible()
        expect(widget.loc("#cb-f-email")).to_be_focused()
    finally:
        held.clear_faults()
    audit(page, "leave-a-message form")
    assert widget.errors == []
