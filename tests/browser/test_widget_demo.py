"""`chat-bff demo` as a newcomer sees it, at the shipped poll cadence: the bot's first line,
then the agent's typing shown before each reply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from app.emulator.agent import REPLIES, bot_line
from harness.servers import ServerProcess
from tests.browser.widget import Widget

pytestmark = pytest.mark.browser

# True once, at one instant, the typing line shows and `text` is nowhere in the transcript.
TYPING_BEFORE = """
(text) => {
  const root = document.getElementById("chat-bff-widget").shadowRoot;
  const typing = root.querySelector(".cb-typing");
  const said = [...root.querySelectorAll(".cb-log .cb-bubble")].some((b) => b.innerText === text);
  return !typing.hidden && typing.offsetParent !== null && !said;
}
"""


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    server = ServerProcess("demo").start()
    yield server
    server.stop()


def test_the_demo_shows_the_agent_typing_before_the_reply(page: Page, demo: ServerProcess) -> None:
    widget = Widget(page)
    page.goto(demo.url + "/")
    widget.start("Noor", "Where is my order?")
    # The bot answers at once, before any agent; then the agent joins and greets.
    widget.expect_text(bot_line("Noor"))
    greeting = widget.bubbles.filter(has_text="Hello Noor, my name is")
    expect(greeting).to_have_count(1, timeout=15_000)
    typing = widget.loc(".cb-typing")
    expect(typing).to_be_hidden()

    widget.send("It should have come on Monday.")
    page.wait_for_function(TYPING_BEFORE, arg=REPLIES[0], timeout=12_000)
    expect(typing).to_contain_text("is typing")
    expect(widget.bubbles.filter(has_text=REPLIES[0])).to_have_count(1, timeout=12_000)
    expect(typing).to_be_hidden()
    assert widget.errors == []
