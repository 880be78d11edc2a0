"""An app that goes to the background stops reading; the upstream drops a customer whose
client sends nothing for its idle timeout (45 s). chat-bff keeps such a chat alive upstream for
`BFF_BACKGROUND_KEEPALIVE_S` after the last reader, polling at the keep-alive cadence only,
and the app resumes with every message it missed, once.

Times are scaled down twelve-fold from production (idle disconnect 45 s -> 3.75 s, keep-alive
10 s -> 1 s, a background of 3 minutes -> 15 s) so the test takes seconds, not minutes; the
mechanism is the same. The control run, with a background keep-alive shorter than the
background, shows that without it the customer is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from harness.chats import post, start_chat, wait_for
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_emulator
from tests.e2e.background import (
    IDLE_DISCONNECT_S,
    KEEPALIVE_S,
    READER_WINDOW_S,
    scaled_bff,
    upstream_id_of,
)

BACKGROUND_S = 15.0


@pytest.fixture(scope="module")
def strict_upstream() -> Iterator[ServerProcess]:
    """An upstream that drops silent customers quickly, with an agent that answers fast."""
    server = start_emulator(
        "--agent-join-delay",
        "0.2",
        "--agent-reply-delay",
        "0.2",
        "--idle-disconnect",
        str(IDLE_DISCONNECT_S),
    )
    yield server
    server.stop()


class App:
    """A mobile app reading its chat with index long-polls, as its docs tell it to."""

    def __init__(self, client: httpx.Client, handle: str) -> None:
        self.client, self.handle = client, handle
        self.cursor = 0
        self.seen: list[int] = []
        self.texts: list[str] = []

    def read(self, wait_s: float = 1.0) -> list[dict[str, Any]]:
        answer = self.client.get(
            f"/api/v2/chats/{self.handle}/messages",
            params={"index": self.cursor + 1, "wait": wait_s},
        )
        assert answer.status_code == 200, answer.text
        messages: list[dict[str, Any]] = answer.json()["messages"]
        for message in messages:
            self.seen.append(message["index"])
            self.texts.append(message.get("text") or "")
            self.cursor = max(self.cursor, message["index"])
        return messages

    def until(self, predicate: Any, what: str, timeout_s: float = 10.0) -> None:
        """Keep reading until `predicate()` holds."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.read()


@contextmanager
def chatting(
    upstream: ServerProcess, background_keepalive_s: float, nickname: str
) -> Iterator[tuple[App, EmulatorControl, str]]:
    """An app in a chat with an agent who has greeted it, on its own chat-bff process."""
    bff = scaled_bff(upstream, background_keepalive_s)
    control = EmulatorControl(upstream.url)
    try:
        with httpx.Client(base_url=bff.url, timeout=10) as client:
            app = App(client, start_chat(client, nickname))
            app.until(lambda: any("How can I help" in t for t in app.texts), "the greeting")
            yield app, control, upstream_id_of(control, nickname)
    finally:
        control.http.close()
        bff.stop()


def test_an_app_in_the_background_resumes_its_chat_with_every_message_once(
    strict_upstream: ServerProcess,
) -> None:
    with chatting(strict_upstream, 60, "Backgrounded") as (app, control, upstream_id):
        left = time.monotonic()
        for k in range(3):  # the agent writes while the app is away
            time.sleep(BACKGROUND_S / 4)
            control.agent_say(upstream_id, f"while you were away {k}")
        time.sleep(BACKGROUND_S / 4)
        away_from = left + READER_WINDOW_S + KEEPALIVE_S
        polls = [
            r
            for r in control.requests()
            if r.get("chat_id") == upstream_id and float(str(r["at"])) >= away_from
        ]
        away_s = time.monotonic() - away_from
        # Kept alive upstream, at the keep-alive cadence (not the 0.4 s ceiling).
        assert control.chat(upstream_id)["customer_present"] is True
        assert not control.chat(upstream_id)["customer_disconnected"]
        assert away_s / KEEPALIVE_S - 3 <= len(polls) <= away_s / KEEPALIVE_S + 3, polls

        back = len(app.seen)
        app.read()
        missed = [t for t in app.texts[back:] if t.startswith("while you were away")]
        assert missed == [f"while you were away {k}" for k in range(3)]
        assert len(app.seen) == len(set(app.seen)), "a message came twice"
        # The chat goes on: a send works and the agent's answer arrives.
        sent = post(app.client, app.handle, "SendMessage", text="found it: 4711")
        assert sent.status_code == 200
        app.until(lambda: "found it: 4711" in app.texts, "the echo")
        said = len(app.texts)
        app.until(lambda: any(t for t in app.texts[said:]), "the agent's reply")
        assert len(app.seen) == len(set(app.seen))


def test_without_the_background_keepalive_the_upstream_drops_the_customer(
    strict_upstream: ServerProcess,
) -> None:
    """The control run: interest that lapses before the app comes back lets the upstream's
    idle timeout drop the customer, which the keep-alive above prevents."""
    with chatting(strict_upstream, 1, "Dropped") as (_, control, upstream_id):
        wait_for(
            lambda: control.chat(upstream_id)["customer_disconnected"],
            timeout_s=IDLE_DISCONNECT_S + READER_WINDOW_S + 8,
            what="the upstream to drop the customer",
        )
