"""What a newcomer saw that looked unfinished, each fixed and kept fixed: mixed-direction text in
Arabic, a wait of "0 seconds", the opening message without a time, the header title squeezed
onto two lines once the chat is live, the launcher's chat icon on an open panel, and a send that
failed while the connection was down waiting for a click once it is back. (The leave-a-message
form's order and its thank-you view are in test_widget_offline.py.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Page, Request, expect

from app.emulator.agent import REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, bff_env, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.widget import (
    Widget,
    agent_name,
    settle,
    unique,
    upstream_chat_id,
    upstream_texts,
    wait_until,
)

pytestmark = pytest.mark.browser

# What a text in the shadow root looks like to the page: `:dir()` is the direction the browser
# resolved for the element (dir="auto" takes it from the text's first strong character).
DIRECTION = "el => el.matches(':dir(rtl)') ? 'rtl' : 'ltr'"


def test_english_text_in_an_arabic_widget_keeps_its_own_direction(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/?lang=ar")
    nickname = unique("Lina")
    widget.start(nickname, "متى يصل طلبي؟")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": False}).raise_for_status()
    held.agent_say(chat_id, "Hi, can I help you?")
    widget.send("نعم، رقم الطلب 4417.")
    widget.expect_text("Hi, can I help you?")
    widget.expect_text("نعم، رقم الطلب 4417.")

    assert widget.loc(".cb").evaluate(DIRECTION) == "rtl"  # the widget is mirrored
    english = widget.loc(".cb-them").filter(has_text="Hi, can I help you?")
    assert english.locator(".cb-bubble").evaluate(DIRECTION) == "ltr"  # "?" at its right end
    assert english.locator(".cb-who").evaluate(DIRECTION) == "ltr"  # the agent's Latin name
    arabic = widget.loc(".cb-me").filter(has_text="نعم، رقم الطلب 4417.")
    assert arabic.locator(".cb-bubble").evaluate(DIRECTION) == "rtl"
    assert widget.errors == []


def test_the_wait_never_reads_zero_seconds_and_the_question_has_its_time(
    page: Page, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + "/")
    widget.open()
    # Every text the waiting card's count ever shows, from its first.
    page.locator("#chat-bff-widget").evaluate(
        """host => {
          const el = host.shadowRoot.querySelector(".cb-waited");
          window.__waited = [];
          new MutationObserver(() => window.__waited.push(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        }"""
    )
    before = time.time()
    widget.start(unique("Zed"), "Is it in stock?")
    waited = widget.loc(".cb-waited")
    expect(waited).to_have_text("Waiting for 2 seconds")
    shown = [text for text in page.evaluate("window.__waited") if text]
    assert shown[0] == "Waiting for 1 second", shown
    assert not [text for text in shown if re.search(r"\b0 seconds", text)], shown

    # The customer's opening question, like every message, says when it was written.
    stamp = widget.loc(".cb-subject time")
    expect(stamp).to_be_visible()
    written = stamp.get_attribute("datetime")
    assert written is not None
    at = datetime.fromisoformat(written.replace("Z", "+00:00")).timestamp()
    assert before - 2 <= at <= time.time() + 1
    assert re.fullmatch(r"\d{1,2}:\d\d\s?(AM|PM)", stamp.inner_text()), stamp.inner_text()
    assert widget.errors == []


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_title_keeps_one_line_beside_the_live_chats_buttons(
    page: Page, held_bff: ServerProcess, held: EmulatorControl, lang: str
) -> None:
    widget = Widget(page)
    page.goto(held_bff.url + f"/?lang={lang}")
    nickname = unique("Tam")
    widget.start(nickname, "Header")
    chat_id = upstream_chat_id(held, nickname)
    title = widget.loc("#cb-title")

    def one_whole_line() -> None:
        settle(page)
        lines, full, shown, height, line = title.evaluate(
            """el => {
              const text = document.createRange();
              text.selectNodeContents(el);
              const style = getComputedStyle(el);
              return [text.getClientRects().length, el.scrollWidth, el.clientWidth,
                      el.getBoundingClientRect().height, parseFloat(style.lineHeight) ||
                      parseFloat(style.fontSize) * 1.45];
            }"""
        )
        assert lines == 1 and height < line * 1.5, (lines, height, line)
        assert full <= shown, "the title is cut short"
        box = title.bounding_box()
        for button in (".cb-end", ".cb-head .cb-icon[aria-pressed]", ".cb-min"):
            other = widget.loc(button).bounding_box()
            assert box and other
            apart = (  # (half a pixel for rounding)
                box["y"] + box["height"] <= other["y"] + 0.5
                or other["x"] + other["width"] <= box["x"] + 0.5
                or box["x"] + box["width"] <= other["x"] + 0.5
            )
            assert apart, f"{button} overlaps the title: {box} {other}"

    expect(widget.loc(".cb-end")).to_be_visible()
    one_whole_line()  # waiting
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    expect(widget.loc(".cb-sub-text")).to_contain_text(agent_name(held, chat_id))
    one_whole_line()  # chatting
    expect(title).to_have_text("Alder & Pine support")
    assert widget.errors == []


def test_the_open_panels_launcher_shows_and_says_it_minimises(
    page: Page, bff: ServerProcess
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    launcher = widget.loc(".cb-launcher")
    chat_icon, chevron = launcher.locator("svg").nth(0), launcher.locator("svg").nth(1)
    expect(chat_icon).to_be_visible()
    expect(chevron).to_be_hidden()
    expect(launcher).to_have_accessible_name("Open chat")
    launcher.click()
    expect(widget.loc(".cb-panel")).to_be_visible()
    expect(chat_icon).to_be_hidden()
    expect(chevron).to_be_visible()
    expect(launcher).to_have_accessible_name("Minimise chat")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    launcher.click()
    expect(widget.loc(".cb-panel")).to_be_hidden()
    expect(chat_icon).to_be_visible()
    expect(launcher).to_have_accessible_name("Open chat")
    assert widget.errors == []


@pytest.fixture
def own_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, **WIDGET_BFF)
    yield server
    server.kill()


def test_a_send_that_failed_while_offline_goes_by_itself_once_back_online(
    page: Page, own_bff: ServerProcess, emulator: ServerProcess, control: EmulatorControl
) -> None:
    sends: list[tuple[str, str | None]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and '"SendMessage"' in (request.post_data or ""):
            sends.append((request.post_data or "", request.headers.get("idempotency-key")))

    page.on("request", record)
    widget = Widget(page)
    page.goto(own_bff.url + "/")
    nickname = unique("Oz")
    widget.start(nickname, "Offline")
    chat_id = upstream_chat_id(control, nickname)
    widget.expect_text(
        f"Hello {nickname}, my name is {agent_name(control, chat_id)}. How can I help you?"
    )
    banner = widget.loc(".cb-banner")

    own_bff.kill()  # the connection is down
    expect(banner).to_have_text("Connection lost. Reconnecting…")
    widget.send("Written in the tunnel")
    failed = widget.loc(".cb-failed")
    expect(failed.get_by_role("alert")).to_have_text("Not sent. Retry")
    replacement = ServerProcess(
        "serve", env=bff_env(emulator.url, **WIDGET_BFF), port=own_bff.port
    ).start()
    try:
        expect(banner).to_be_hidden(timeout=15_000)
        widget.expect_text("Written in the tunnel")  # nobody clicked Retry
        expect(widget.loc(".cb-failed, .cb-pending")).to_have_count(0)
        widget.expect_text(REPLIES[0])
        tries = [key for body, key in sends if "Written in the tunnel" in body]
        assert len(tries) == 2 and tries[0] and tries[0] == tries[1], tries
        assert upstream_texts(control, chat_id).count("Written in the tunnel") == 1

        # Retried once by itself: a retry that fails again waits for the customer.
        replacement.kill()
        expect(banner).to_have_text("Connection lost. Reconnecting…")
        widget.send("Written in the second tunnel")
        expect(failed.get_by_role("alert")).to_have_text("Not sent. Retry")
        control.faults(error_status=503, routes="write", remaining=1)
        replacement = ServerProcess(
            "serve", env=bff_env(emulator.url, **WIDGET_BFF), port=own_bff.port
        ).start()
        expect(banner).to_be_hidden(timeout=15_000)
        wait_until(
            lambda: len([b for b, _ in sends if "second tunnel" in b]) == 2,
            "the one automatic retry",
            page=page,
        )
        expect(failed.get_by_role("alert")).to_have_text("Not sent. Retry")
        page.wait_for_timeout(1500)
        assert len([b for b, _ in sends if "second tunnel" in b]) == 2
        failed.get_by_role("button", name="Retry").click()
        widget.expect_text("Written in the second tunnel")
        second = [key for body, key in sends if "second tunnel" in body]
        assert len(second) == 3 and len(set(second)) == 1 and second[0] != tries[0]
        assert upstream_texts(control, chat_id).count("Written in the second tunnel") == 1
        assert widget.errors == []
    finally:
        control.clear_faults()
        replacement.kill()
