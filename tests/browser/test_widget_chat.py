"""The customer's side of a chat in the demo page: start, talk, typing both ways, end, reload,
hostile texts, and the long-poll fallback."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from app.emulator.agent import NOTICE, REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess
from tests.browser.chromium import ARTIFACTS
from tests.browser.widget import (
    Widget,
    agent_name,
    log_position,
    operations,
    unique,
    upstream_chat_id,
    upstream_entries,
    upstream_texts,
    wait_until,
)

pytestmark = pytest.mark.browser


def test_full_chat_with_typing_both_ways_and_end(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    since = log_position(control)
    nickname = unique("Jamie")
    widget.start(nickname, "My order hasn't arrived", order="1234")
    chat_id = upstream_chat_id(control, nickname)
    assert control.chat(chat_id)["userData"] == {"order": "1234"}
    agent = agent_name(control, chat_id)

    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    expect(widget.loc(".cb-sub-text")).to_have_text(f"Chatting with {agent}")
    expect(widget.loc(".cb-sys").filter(has_text=f"{agent} joined the chat")).to_have_count(1)
    # The platform's "transcript will be sent by e-mail" is no promise without an address.
    expect(widget.loc(".cb-sys")).to_have_count(1)
    assert "mail" not in widget.loc(".cb-chat").inner_text()
    assert NOTICE in [entry.get("text") for entry in upstream_entries(control, chat_id)]

    # The customer's typing reaches the upstream: started on a keystroke, stopped on clearing.
    widget.input.press_sequentially("Hi", delay=30)
    wait_until(
        lambda: "SendStartTypingNotification" in operations(control, chat_id, since),
        "the customer's typing to reach the upstream",
    )
    widget.input.fill("")
    wait_until(
        lambda: "SendStopTypingNotification" in operations(control, chat_id, since),
        "the customer's stop-typing to reach the upstream",
    )

    widget.send("My order #1234 hasn't arrived yet.")
    widget.expect_text("My order #1234 hasn't arrived yet.")
    widget.expect_text(REPLIES[0])
    # The subject came first, as the customer's own words.
    expect(widget.loc(".cb-log .cb-me .cb-bubble")).to_have_text(
        ["My order hasn't arrived", "My order #1234 hasn't arrived yet."]
    )

    # The agent's typing shows in the widget, and goes again.
    typing = widget.loc(".cb-typing")
    expect(typing).to_be_hidden()
    control.http.post(f"/chats/{chat_id}/agent/typing", json={"typing": True}).raise_for_status()
    expect(typing).to_be_visible()
    expect(typing).to_have_text(f"{agent} is typing…")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo-mid-chat.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    control.http.post(f"/chats/{chat_id}/agent/typing", json={"typing": False}).raise_for_status()
    expect(typing).to_be_hidden()

    widget.end_chat()
    expect(widget.loc(".cb-panel")).to_contain_text("This chat has ended.")
    expect(widget.loc(".cb-sub-text")).to_be_hidden()
    expect(widget.input).to_be_hidden()
    expect(page.get_by_role("button", name="Start a new chat")).to_be_focused()
    # The stream delivered the last entry before its `end`.
    expect(widget.loc(".cb-sys").filter(has_text="You left the chat")).to_have_count(1)
    wait_until(lambda: control.chat(chat_id)["state"] == "Idle", "the upstream chat to end")
    assert operations(control, chat_id, since).count("Complete") == 1
    assert widget.texts() == upstream_texts(control, chat_id)

    assert widget.errors == []


def test_reload_mid_chat_resumes_complete_without_duplicates(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    nickname = unique("Robin")
    widget.start(nickname, "Sizing question")
    chat_id = upstream_chat_id(control, nickname)
    widget.send("Does the jacket run small?")
    widget.expect_text(REPLIES[0])
    widget.send("I usually wear M.")
    widget.expect_text(REPLIES[1])
    before = widget.texts()
    assert len(before) == 5

    control.agent_say(chat_id, "Said while the page reloads")
    page.reload()
    # The panel comes back open, rebuilt from the server: everything once, in order.
    expect(widget.loc(".cb-panel")).to_be_visible()
    widget.expect_text("Said while the page reloads")
    assert widget.texts() == [*before, "Said while the page reloads"]
    indices = widget.indices()
    assert indices == sorted(set(indices))

    widget.send("Thanks, I'll take L then.")
    widget.expect_text(REPLIES[2])
    assert widget.texts() == upstream_texts(control, chat_id)
    indices = widget.indices()
    assert indices == sorted(set(indices))
    assert widget.errors == []


def test_hostile_texts_render_inert(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    nickname = unique("<img src=x onerror=window.__pwned=1>")
    widget.start(nickname, "<script>window.__pwned=2</script>")
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")

    hostile = [
        "<img src=x onerror=window.__pwned=3>",
        "<script>window.__pwned=4</script>",
        "javascript:alert(1)",
    ]
    for text in hostile:
        widget.send(text)
    from_agent = [
        "<img src=x onerror=window.__pwned=5><svg onload=window.__pwned=6>",
        'Try javascript:alert(1) or <a href="javascript:alert(1)">this</a>',
        "Tracking: https://example.com/track?id=1234&lang=en. <b>Thanks!</b>",
    ]
    for text in from_agent:
        control.agent_say(chat_id, text)
    for text in [*hostile, *from_agent]:
        widget.expect_text(text)

    assert page.evaluate("window.__pwned") is None
    assert widget.loc(".cb-log img, .cb-log script, .cb-log svg, .cb-log b").count() == 0
    assert not [url for url in widget.requests if url.endswith("/x")]
    links = widget.loc(".cb-log a")
    expect(links).to_have_count(1)
    assert links.get_attribute("href") == "https://example.com/track?id=1234&lang=en"
    assert links.inner_text() == "https://example.com/track?id=1234&lang=en"
    assert links.get_attribute("rel") == "noopener noreferrer"
    assert links.get_attribute("target") == "_blank"
    hrefs = widget.loc("a").evaluate_all("anchors => anchors.map(a => a.href)")
    assert not [href for href in hrefs if href.lower().startswith("javascript:")]
    assert widget.errors == []


@pytest.mark.parametrize("breakage", ["no EventSource", "stream broken by a proxy"])
def test_long_poll_fallback_in_german(
    page: Page, bff: ServerProcess, control: EmulatorControl, breakage: str
) -> None:
    if breakage == "no EventSource":
        page.add_init_script("delete window.EventSource")
    else:

        def proxy_error(route: Route) -> None:
            route.fulfill(status=502, body="Bad Gateway")

        page.route("**/events*", proxy_error)
    widget = Widget(page)
    page.goto(bff.url + "/?lang=de")
    expect(widget.loc(".cb-launcher")).to_have_attribute("aria-label", "Chat öffnen")
    nickname = unique("Kim")
    widget.start(nickname, "Wo ist mein Paket?")
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    expect(widget.loc(".cb-sub-text")).to_have_text(f"Sie chatten mit {agent}")
    widget.send("Bestellung 1234")
    widget.expect_text(REPLIES[0])
    expect(widget.loc(".cb-banner")).to_be_hidden()
    assert any("/messages?index=" in url and "wait=25" in url for url in widget.requests)
    if breakage == "no EventSource":
        assert widget.streams == []
    else:
        assert widget.streams, "the widget should have tried the stream first"
    assert widget.texts() == upstream_texts(control, chat_id)

    # Ending works the same way, and the long-poll stops (no request left hanging).
    widget.end_chat("Chat beenden")
    expect(widget.loc(".cb-sys").filter(has_text="Sie haben den Chat verlassen")).to_have_count(1)
    expect(widget.loc(".cb-ended")).to_have_text("Der Chat ist beendet.")

    def quiet() -> bool:
        before = len(widget.requests)
        page.wait_for_timeout(700)
        return len(widget.requests) == before

    wait_until(quiet, "the widget to stop polling")
    assert widget.errors == []


def test_keyboard_only_with_visible_focus(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    launcher = widget.loc(".cb-launcher")
    focused = "el => el.matches(':focus')"
    for _ in range(30):  # the launcher comes after the page's own links and buttons
        page.keyboard.press("Tab")
        if launcher.evaluate(focused):
            break
    else:
        raise AssertionError("Tab never reached the chat launcher")
    assert launcher.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"

    page.keyboard.press("Enter")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(widget.loc("#cb-f-nickname")).to_be_focused()
    nickname = unique("Alexis")
    page.keyboard.type(nickname)
    page.keyboard.press("Tab")
    page.keyboard.type("Only a keyboard")
    page.keyboard.press("Tab")
    expect(widget.loc("#cb-f-email")).to_be_focused()
    page.keyboard.press("Enter")  # implicit submission of the start form
    expect(widget.input).to_be_focused()
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")

    page.keyboard.type("Typed and sent with Enter")
    page.keyboard.press("Enter")
    widget.expect_text("Typed and sent with Enter")
    widget.expect_text(REPLIES[0])

    page.keyboard.press("Escape")
    expect(widget.loc(".cb-panel")).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(widget.input).to_be_focused()
    assert widget.errors == []


def test_phone_sized_screen_gets_a_full_screen_panel(browser: Browser, bff: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 760}, is_mobile=True)
    try:
        widget = Widget(context.new_page())
        widget.page.goto(bff.url + "/")
        widget.open()
        panel = widget.loc(".cb-panel")
        full = {"x": 0, "y": 0, "width": 390, "height": 760}
        wait_until(lambda: panel.bounding_box() == full, "a full-screen panel", page=widget.page)
        expect(widget.loc(".cb-launcher")).to_be_hidden()
        assert widget.loc("#cb-f-nickname").evaluate("el => getComputedStyle(el).fontSize") == (
            "16px"
        )
    finally:
        context.close()
