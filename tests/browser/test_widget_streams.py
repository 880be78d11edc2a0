"""The widget's connection: one stream shared by all tabs with takeover when the leader tab
closes, and catching up after the serving instance was killed and restarted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.emulator.agent import REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, bff_env, start_bff
from tests.browser.widget import (
    Widget,
    agent_name,
    sse_streams,
    unique,
    upstream_chat_id,
    upstream_texts,
    wait_until,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def own_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    """A chat-bff of this test's own, so its stream gauge counts only this test's streams."""
    server = start_bff(emulator.url)
    yield server
    server.kill()


def test_two_tabs_share_one_stream_and_the_next_takes_over(
    context: BrowserContext, own_bff: ServerProcess, control: EmulatorControl
) -> None:
    first = Widget(context.new_page())
    first.page.goto(own_bff.url + "/")
    nickname = unique("Sasha")
    first.start(nickname, "Two tabs")
    chat_id = upstream_chat_id(control, nickname)
    greeting = f"Hello {nickname}, my name is {agent_name(control, chat_id)}. How can I help you?"
    first.expect_text(greeting)

    # A second tab of the same site finds the running chat and shows it whole.
    second = Widget(context.new_page())
    second.page.goto(own_bff.url + "/")
    second.open()
    second.expect_text(greeting)
    second.send("Sent from the second tab")
    for widget in (first, second):
        widget.expect_text("Sent from the second tab")
        widget.expect_text(REPLIES[0])
    control.agent_say(chat_id, "Seen in both tabs")
    for widget in (first, second):
        widget.expect_text("Seen in both tabs")
    assert len(first.streams) == 1
    assert second.streams == []
    assert sse_streams(own_bff) == 1

    # The leader tab goes away: the other one resumes the stream after what it has.
    last_index = max(second.indices())
    first.page.close()
    wait_until(lambda: second.streams, "the second tab to open the stream", page=second.page)
    assert second.streams == [f"{first.streams[0]}?lastEventId={last_index}"]
    control.agent_say(chat_id, "After the first tab closed")
    second.expect_text("After the first tab closed")
    wait_until(lambda: sse_streams(own_bff) == 1, "one stream after the takeover", page=second.page)
    assert second.texts() == upstream_texts(control, chat_id)
    indices = second.indices()
    assert indices == sorted(set(indices))
    assert first.errors == second.errors == []


def test_instance_restart_shows_reconnecting_then_catches_up(
    page: Page, own_bff: ServerProcess, emulator: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(own_bff.url + "/")
    nickname = unique("Noor")
    widget.start(nickname, "Restart")
    chat_id = upstream_chat_id(control, nickname)
    widget.send("Before the restart")
    widget.expect_text(REPLIES[0])
    banner = widget.loc(".cb-banner")
    expect(banner).to_be_hidden()

    own_bff.kill()
    expect(banner).to_have_text("Connection lost. Reconnecting…")
    control.agent_say(chat_id, "Said while the instance was down")
    control.agent_say(chat_id, "And once more")
    streams_before = len(widget.streams)
    replacement = ServerProcess("serve", env=bff_env(emulator.url), port=own_bff.port).start()
    try:
        expect(banner).to_be_hidden(timeout=15_000)
        widget.expect_text("Said while the instance was down")
        widget.expect_text("And once more")
        resumed = widget.streams[streams_before:]
        assert resumed and all("?lastEventId=" in url for url in resumed)
        widget.send("After the restart")
        widget.expect_text(REPLIES[1])
        assert widget.texts() == upstream_texts(control, chat_id)
        indices = widget.indices()
        assert indices == sorted(set(indices))
        assert widget.errors == []
    finally:
        replacement.kill()
