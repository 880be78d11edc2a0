"""A running chat survives the customer leaving: every tab closed, the site opened again within
`data-restore-minutes` (10 by default) shows the same chat, re-read from the server first (a
chat that ended meanwhile shows its ended view); after the window, a fresh start form. Two
chat-bff servers used by pages of one origin keep their own chats (the keys name the server).
With `data-restore-minutes="0"` a chat lives only as long as its tabs, as before.

The scripted agent of this module's emulator acts only when the tests say so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.pages import Pages
from tests.browser.widget import (
    Widget,
    log_position,
    unique,
    upstream_chat_id,
    upstream_texts,
    wait_until,
)

pytestmark = pytest.mark.browser

# Every phase the widget's view goes through on a page, recorded from its first.
RECORD_PHASES = """
window.__phases = [];
new MutationObserver((_, watch) => {
  const host = document.getElementById("chat-bff-widget");
  if (!host) return;
  watch.disconnect();
  const note = () => {
    const view = host.shadowRoot.querySelector(".cb");
    const phase = view && view.dataset.phase;
    if (phase && window.__phases[window.__phases.length - 1] !== phase) window.__phases.push(phase);
  };
  new MutationObserver(note).observe(host.shadowRoot, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-phase"],
  });
  note();
}).observe(document, { childList: true, subtree: true });
"""


@pytest.fixture(scope="module")
def site() -> Iterator[Pages]:
    with Pages() as pages:
        yield pages


@pytest.fixture(scope="module")
def other_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    """A second chat-bff, for a second site's widget on the same origin."""
    server = start_bff(held_emulator.url, BFF_ALLOWED_ORIGINS="*", **WIDGET_BFF)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    """The module's chat-bff, for pages of any origin. With nobody reading, it polls a chat
    every second (not every 10): the tests need not wait long for it to notice an end."""
    server = start_bff(
        held_emulator.url, BFF_ALLOWED_ORIGINS="*", BFF_POLL_KEEPALIVE_S="1", **WIDGET_BFF
    )
    yield server
    server.stop()


def page_of(site: Pages, bff: ServerProcess, path: str = "/", **attrs: str) -> str:
    return site.url + path + "?" + urlencode({"server": bff.url, **attrs})


def started(page: Page, url: str, held: EmulatorControl, subject: str) -> tuple[Widget, str]:
    """A chat started in the widget at `url`, joined and greeted by the agent."""
    widget = Widget(page)
    page.goto(url)
    nickname = unique("Rae")
    widget.start(nickname, subject)
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    widget.expect_text(
        f"Hello {nickname}, my name is {held.chat(chat_id)['agent']}. How can I help you?"
    )
    return widget, chat_id


def record(page: Page, base: str) -> Any:
    """The restore record the widget keeps for the chat-bff at `base` (None: none)."""
    raw = page.evaluate("key => localStorage.getItem(key)", f"chat-bff|{base}|r")
    return None if raw is None else json.loads(raw)


def test_closing_the_only_tab_and_coming_back_resumes_the_chat(
    context: BrowserContext, held_bff: ServerProcess, held: EmulatorControl
) -> None:
    widget, chat_id = started(context.new_page(), held_bff.url + "/", held, "Back soon")
    widget.send("I'll be right back")
    widget.expect_text("I'll be right back")
    held.agent_say(chat_id, "Take your time")
    widget.expect_text("Take your time")
    before = widget.texts()
    widget.page.close()  # the only tab: nothing of the site is open now

    held.agent_say(chat_id, "Said while you were away")
    time.sleep(30)
    back = Widget(context.new_page())
    back.page.goto(held_bff.url + "/")
    # The reply that came meanwhile is news: on the launcher before the panel opens.
    expect(back.loc(".cb-badge")).to_have_text("1")
    back.open()
    back.expect_text("Said while you were away")
    assert back.texts() == [*before, "Said while you were away"]
    assert back.texts() == upstream_texts(held, chat_id)
    indices = back.indices()
    assert indices == sorted(set(indices))
    expect(back.loc(".cb-subject .cb-bubble")).to_have_text("Back soon")
    back.send("Here again")
    back.expect_text("Here again")
    assert upstream_texts(held, chat_id)[-1] == "Here again"
    assert back.errors == []


def test_after_the_restore_window_a_fresh_start_form(
    context: BrowserContext, open_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    url = page_of(site, open_bff, **{"restore-minutes": "0.2"})  # 12 seconds
    widget, chat_id = started(context.new_page(), url, held, "Gone for long")
    kept = record(widget.page, open_bff.url)
    assert kept["h"] and kept["x"] > time.time() * 1000
    widget.page.close()
    time.sleep(13)

    back = Widget(context.new_page())
    back.page.goto(url)
    back.open()
    expect(back.page.get_by_role("button", name="Start chat")).to_be_visible()
    expect(back.loc(".cb-chat")).to_be_hidden()
    assert back.streams == []
    assert record(back.page, open_bff.url) is None  # forgotten
    assert held.chat(chat_id)["state"] != "Idle"  # the widget gave up on it, nothing more
    assert back.errors == []


def test_a_chat_that_ended_while_no_tab_was_open_shows_its_ended_view(
    context: BrowserContext, open_bff: ServerProcess, held: EmulatorControl
) -> None:
    context.add_init_script(RECORD_PHASES)
    widget, chat_id = started(context.new_page(), open_bff.url + "/", held, "Ending unseen")
    widget.send("Thanks, that's all")
    widget.expect_text("Thanks, that's all")
    before = widget.texts()
    widget.page.close()
    since = log_position(held)
    held.http.post(f"/chats/{chat_id}/agent/leave").raise_for_status()
    # The customer is back after chat-bff has polled the chat (it re-reads the chat's state
    # after someone left). Back sooner, a customer may see it live until that poll (at most
    # BFF_POLL_KEEPALIVE_S after the end), as chat-bff itself did not know better.
    wait_until(
        lambda: any(
            r["method"] == "GET" and r["path"].endswith(f"/chats/{chat_id}")
            for r in held.http.get("/requests", params={"since": since}).json()["requests"]
        ),
        "chat-bff to read the ended chat",
    )

    back = Widget(context.new_page())
    back.page.goto(open_bff.url + "/")
    back.open()
    expect(back.loc(".cb-ended")).to_have_text("This chat has ended.")
    expect(back.input).to_be_hidden()
    expect(back.loc(".cb-end")).to_be_hidden()
    assert back.texts() == before == upstream_texts(held, chat_id)  # its transcript
    expect(back.page.get_by_role("button", name="Download transcript")).to_be_visible()
    # Never shown as live, not for a moment: its state was read first.
    phases = back.page.evaluate("window.__phases")
    assert phases and phases[-1] == "ended" and not {"waiting", "chatting"} & set(phases), phases
    assert record(back.page, open_bff.url) is None

    # Nothing left to restore: the next visit starts afresh.
    fresh = Widget(context.new_page())
    back.page.close()
    fresh.page.goto(open_bff.url + "/")
    fresh.open()
    expect(fresh.page.get_by_role("button", name="Start chat")).to_be_visible()
    assert fresh.errors == back.errors == []


def test_two_servers_on_one_origin_keep_their_own_chats(
    context: BrowserContext,
    open_bff: ServerProcess,
    other_bff: ServerProcess,
    site: Pages,
    held: EmulatorControl,
) -> None:
    first, _ = started(context.new_page(), page_of(site, open_bff, "/shop"), held, "For A")
    second, _ = started(context.new_page(), page_of(site, other_bff, "/outlet"), held, "For B")
    assert record(first.page, open_bff.url)["h"] != record(first.page, other_bff.url)["h"]
    first.page.close()
    second.page.close()

    for bff, path, subject in ((open_bff, "/shop", "For A"), (other_bff, "/outlet", "For B")):
        back = Widget(context.new_page())
        back.page.goto(page_of(site, bff, path))
        back.open()
        expect(back.loc(".cb-subject .cb-bubble")).to_have_text(subject)
        back.page.close()
    # Another page of the site with the first server's widget: the first server's chat.
    elsewhere = Widget(context.new_page())
    elsewhere.page.goto(page_of(site, open_bff, "/elsewhere"))
    elsewhere.open()
    expect(elsewhere.loc(".cb-subject .cb-bubble")).to_have_text("For A")
    assert elsewhere.errors == []


def test_restore_minutes_zero_keeps_a_chat_to_its_tabs(
    context: BrowserContext, open_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    url = page_of(site, open_bff, **{"restore-minutes": "0"})
    widget, _ = started(context.new_page(), url, held, "Shared computer")
    assert record(widget.page, open_bff.url) is None  # nothing kept beyond the tab
    # Another tab while this one is open joins the chat, as before.
    other = Widget(context.new_page())
    other.page.goto(url)
    other.open()
    expect(other.loc(".cb-subject .cb-bubble")).to_have_text("Shared computer")
    other.page.close()
    widget.page.close()

    back = Widget(context.new_page())
    back.page.goto(url)
    back.open()
    expect(back.page.get_by_role("button", name="Start chat")).to_be_visible()
    assert back.errors == []
