"""Reaching a customer who looks elsewhere: the unread count in the page title while the panel
is minimised or the tab hidden, a tone for each new agent message played by exactly one tab
(the one holding the stream) unless muted, the mute remembered, and system notifications
while the tab is hidden, asked for only once the customer has written something."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.widget import OBSERVE_BROWSER, Widget, agent_name, unique, upstream_chat_id

pytestmark = pytest.mark.browser

TITLE = "Alder & Pine · Outdoor gear"


@pytest.fixture(scope="module")
def brisk_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, **WIDGET_BFF)
    yield server
    server.stop()


@pytest.fixture
def observed(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(OBSERVE_BROWSER)
    yield context
    context.close()


def started(
    page: Page, bff: ServerProcess, control: EmulatorControl, name: str
) -> tuple[Widget, str]:
    widget = Widget(page)
    page.goto(bff.url + "/")
    nickname = unique(name)
    widget.start(nickname, "Notifications")
    chat_id = upstream_chat_id(control, nickname)
    widget.expect_text(
        f"Hello {nickname}, my name is {agent_name(control, chat_id)}. How can I help you?"
    )
    return widget, chat_id


def test_unread_count_in_the_title_while_minimised_or_hidden(
    observed: BrowserContext, brisk_bff: ServerProcess, control: EmulatorControl
) -> None:
    widget, chat_id = started(observed.new_page(), brisk_bff, control, "Fay")
    page = widget.page
    expect(page).to_have_title(TITLE)

    page.get_by_role("dialog").get_by_role("button", name="Minimise chat").click()
    control.agent_say(chat_id, "One")
    expect(page).to_have_title(f"(1) {TITLE}")
    expect(widget.loc(".cb-badge")).to_have_text("1")
    control.agent_say(chat_id, "Two")
    expect(page).to_have_title(f"(2) {TITLE}")
    expect(widget.loc(".cb-launcher")).to_have_attribute("aria-label", "Open chat (2 new)")
    widget.open()
    expect(page).to_have_title(TITLE)
    expect(widget.loc(".cb-badge")).to_be_hidden()

    # Open, but the customer switched to another tab.
    widget.set_hidden(True)
    control.agent_say(chat_id, "Three")
    expect(page).to_have_title(f"(1) {TITLE}")
    widget.set_hidden(False)
    expect(page).to_have_title(TITLE)
    assert widget.errors == []


def test_one_tab_chimes_and_the_mute_is_remembered(
    observed: BrowserContext, brisk_bff: ServerProcess, control: EmulatorControl
) -> None:
    first, chat_id = started(observed.new_page(), brisk_bff, control, "Gus")
    assert first.counter("chimes") == 1  # the greeting
    second = Widget(observed.new_page())
    second.page.goto(brisk_bff.url + "/")
    second.open()
    expect(second.bubbles).to_have_count(1)

    control.agent_say(chat_id, "Heard once")
    for widget in (first, second):
        widget.expect_text("Heard once")
    assert (first.counter("chimes"), second.counter("chimes")) == (2, 0)

    # Muted in one tab: silent in all, and still muted after a reload.
    sound = second.page.get_by_role("button", name="Sound for new messages")
    expect(sound).to_have_attribute("aria-pressed", "true")
    sound.click()
    expect(sound).to_have_attribute("aria-pressed", "false")
    expect(first.page.get_by_role("button", name="Sound for new messages")).to_have_attribute(
        "aria-pressed", "false"
    )
    control.agent_say(chat_id, "Not heard")
    for widget in (first, second):
        widget.expect_text("Not heard")
    second.page.reload()
    expect(sound).to_have_attribute("aria-pressed", "false")
    assert (first.counter("chimes"), second.counter("chimes")) == (2, 0)
    sound.click()

    # The tab that chimes is the one holding the stream: when it goes, the next one does.
    first.page.close()
    control.agent_say(chat_id, "Heard in the second tab")
    second.expect_text("Heard in the second tab")
    second.page.wait_for_function("window.__chimes === 1")
    assert second.errors == []


def test_notifications_asked_after_the_first_message_and_shown_while_hidden(
    browser: Browser, observed: BrowserContext, brisk_bff: ServerProcess, control: EmulatorControl
) -> None:
    # Not on page load, not on opening the panel: on the customer's first words.
    asking = Widget(observed.new_page())
    asking.page.goto(brisk_bff.url + "/")
    asking.open()
    asking.loc("#cb-f-nickname").fill(unique("Hal"))
    asking.loc("#cb-f-subject").fill("Ask me later")
    assert asking.counter("asked") == 0
    asking.loc("#cb-f-nickname").press("Enter")
    expect(asking.input).to_be_focused()
    assert asking.counter("asked") == 1
    asking.send("And once more")
    assert asking.counter("asked") == 1

    granted = browser.new_context(permissions=["notifications"])
    try:
        granted.add_init_script(OBSERVE_BROWSER)
        widget, chat_id = started(granted.new_page(), brisk_bff, control, "Ida")
        agent = agent_name(control, chat_id)
        control.agent_say(chat_id, "Seen on the page")
        widget.expect_text("Seen on the page")
        widget.set_hidden(True)
        control.agent_say(chat_id, "Your parcel left the warehouse")
        widget.page.wait_for_function("window.__notes.length === 1")
        notes = widget.page.evaluate("window.__notes")
        assert notes == [
            {"title": "Alder & Pine support", "body": f"{agent}: Your parcel left the warehouse"}
        ]
        assert widget.counter("asked") == 0  # granted already: nothing to ask
        assert widget.errors == []
    finally:
        granted.close()
