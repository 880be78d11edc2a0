"""Events for the page: a listener receives, for a whole chat, the documented sequence of DOM
`CustomEvent`s on window ("chat-bff:<name>") and of `ChatBff.on(name, fn)` calls, each once:
ready, opened, started, agent-joined, message (one per message, without its text unless the
page asks with `data-event-text`), ended, rated."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.pages import Pages
from tests.browser.widget import Widget, unique, upstream_chat_id
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser

NAMES = [
    "ready",
    "opened",
    "started",
    "agent-joined",
    "message",
    "ended",
    "rated",
    "invite-shown",
    "invite-accepted",
]
# The page's own listener, there before the widget: every event with its detail.
LISTEN = (
    "window.__dom = [];"
    f"for (const name of {NAMES!r})"
    "  addEventListener('chat-bff:' + name, (e) => window.__dom.push([name, e.detail]));"
)
# What ChatBff.on hears, registered by the page once the widget's script ran.
SUBSCRIBE = (
    "() => { window.__on = [];"
    f"for (const name of {NAMES!r})"
    "  ChatBff.on(name, (detail) => window.__on.push([name, detail])); }"
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def survey_bff(held_emulator: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        held_emulator.url,
        BFF_ALLOWED_ORIGINS="*",
        BFF_SURVEY_WEBHOOK_URL=receiver.url,
        BFF_SURVEY_WEBHOOK_SECRET=receiver.secret,
        **WIDGET_BFF,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[Pages]:
    with Pages() as pages:
        yield pages


def test_a_page_listener_hears_a_whole_chat(
    context: BrowserContext, survey_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    context.add_init_script(LISTEN)
    page = context.new_page()
    widget = Widget(page)
    page.goto(site.url + "/?" + urlencode({"server": survey_bff.url, "survey": ""}))
    page.wait_for_function("() => window.__dom.length > 0")
    page.evaluate(SUBSCRIBE)
    nickname = unique("Cleo")
    widget.start(nickname, "Events")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    agent = str(held.chat(chat_id)["agent"])
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    widget.send("Is it waterproof?")
    widget.expect_text("Is it waterproof?")
    held.agent_say(chat_id, "Yes, fully.")
    widget.expect_text("Yes, fully.")
    widget.end_chat()
    page.get_by_role("radio", name="5 Excellent").check()
    page.get_by_role("button", name="Send", exact=True).click()
    expect(widget.loc(".cb-rated")).to_be_visible()

    dom = page.evaluate("window.__dom")
    heard = page.evaluate("window.__on")
    names = [name for name, _ in dom]
    assert names == [
        "ready",
        "opened",
        "started",
        "agent-joined",
        "message",
        "message",
        "message",
        "ended",
        "rated",
    ], dom
    assert heard == dom[1:]  # the same, from when the page subscribed
    details = [detail for _, detail in dom]
    assert details[3] == {"name": agent}
    messages = [detail for name, detail in dom if name == "message"]
    assert [m["from"] for m in messages] == ["Agent", "Customer", "Agent"]
    indices = [m["index"] for m in messages]
    assert indices == sorted(set(indices))
    assert all(set(m) == {"index", "from"} for m in messages)  # no text unless asked
    assert details[-1] == {"rating": 5}

    # A reload (the panel comes back open, the chat ended and rated) tells the page the
    # widget is ready again, and nothing it was told before.
    page.reload()
    expect(widget.loc(".cb-ended")).to_be_visible()
    page.wait_for_function("() => window.__dom.length > 0")
    assert [name for name, _ in page.evaluate("window.__dom")] == ["ready"]
    assert widget.errors == []


def test_message_text_only_when_the_page_asks(
    context: BrowserContext, survey_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    context.add_init_script(LISTEN)
    page = context.new_page()
    widget = Widget(page)
    page.goto(site.url + "/?" + urlencode({"server": survey_bff.url, "event-text": ""}))
    nickname = unique("Dev")
    widget.start(nickname, "With text")
    chat_id = upstream_chat_id(held, nickname)
    held.agent_say(chat_id, "Hello there")
    widget.expect_text("Hello there")
    messages = [d for name, d in page.evaluate("window.__dom") if name == "message"]
    assert messages and messages[-1]["text"] == "Hello there"
    assert widget.errors == []
