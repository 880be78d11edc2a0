"""The widget as a customer sees it, and the server-side facts the tests check it against.

The widget lives in an open shadow root; Playwright's CSS locators pierce it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, Request, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess

T = TypeVar("T")


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


def wait_until(
    predicate: Callable[[], T], what: str, timeout_s: float = 10.0, page: Page | None = None
) -> T:
    """Poll `predicate`. With `page`, wait through Playwright: its event handlers (requests,
    errors) only run while a Playwright call is in progress."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(50)


class Widget:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._record)

    def _record(self, request: Request) -> None:
        self.requests.append(request.url)

    def loc(self, selector: str) -> Locator:
        return self.page.locator(selector)

    @property
    def bubbles(self) -> Locator:
        """Rendered transcript texts (not the pending copies of sends in flight)."""
        return self.loc(".cb-log .cb-msg:not(.cb-subject) .cb-bubble")

    @property
    def input(self) -> Locator:
        return self.loc(".cb-composer textarea")

    @property
    def streams(self) -> list[str]:
        return [url for url in self.requests if "/events" in url]

    def open(self) -> None:
        launcher = self.loc(".cb-launcher")
        if launcher.get_attribute("aria-expanded") != "true":
            launcher.click()
        expect(self.loc(".cb-panel")).to_be_visible()

    def start(self, nickname: str, subject: str, **extra: str) -> None:
        self.open()
        self.loc("#cb-f-nickname").fill(nickname)
        self.loc("#cb-f-subject").fill(subject)
        for name, value in extra.items():
            self.loc(f"#cb-f-{name}").fill(value)
        self.loc("#cb-f-nickname").press("Enter")
        expect(self.input).to_be_visible()
        expect(self.input).to_be_focused()

    def send(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")
        expect(self.input).to_have_value("")

    def end_chat(self, label: str = "End chat") -> None:
        """End through the header's button and its confirmation."""
        self.loc(".cb-end").click()
        confirm = self.page.get_by_role("group").get_by_role("button", name=label)
        expect(confirm).to_be_visible()
        expect(self.input).to_be_hidden()
        confirm.click()
        expect(self.loc(".cb-ended")).to_be_visible()

    def set_hidden(self, hidden: bool) -> None:
        self.page.evaluate(SET_VISIBILITY, hidden)

    def counter(self, name: str) -> int:
        value: int = self.page.evaluate(f"window.__{name}")
        return value

    def expect_text(self, text: str, count: int = 1) -> None:
        exact = re.compile("^" + re.escape(text) + "$")
        expect(self.bubbles.filter(has_text=exact)).to_have_count(count)

    def texts(self) -> list[str]:
        return self.bubbles.all_inner_texts()

    def indices(self) -> list[int]:
        values: list[str] = self.loc(".cb-log > li:not(.cb-subject)").evaluate_all(
            "items => items.map(item => item.dataset.index)"
        )
        return [int(v) for v in values]


# Counts what the widget asks of the browser (tones started, notifications shown, permission
# requests) without replacing any of it: each wrapper calls the real API.
OBSERVE_BROWSER = """
window.__chimes = 0;
window.__notes = [];
window.__asked = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.__chimes += 1;
  return start.apply(this, args);
};
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__notes.push({ title, body: options && options.body });
  }
  static requestPermission() {
    window.__asked += 1;
    return RealNotification.requestPermission();
  }
};
"""

# Playwright cannot put a headless page in the background (every page is a visible foreground
# tab), so a tab switch is played out the way the browser reports it: visibilityState and
# document.hidden change, then `visibilitychange` fires.
SET_VISIBILITY = """hidden => {
  if (hidden) {
    Object.defineProperty(document, "hidden", { value: true, configurable: true });
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  } else {
    delete document.hidden;
    delete document.visibilityState;
  }
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def upstream_chat_id(control: EmulatorControl, nickname: str) -> str:
    """The emulator's id of the chat a widget started (newest chats first)."""
    chats = control.http.get("/chats").json()["chats"]
    for chat in reversed(chats):
        if control.chat(chat["id"])["nickname"] == nickname:
            found: str = chat["id"]
            return found
    raise AssertionError(f"no upstream chat for {nickname!r}")


def upstream_entries(control: EmulatorControl, chat_id: str) -> list[dict[str, Any]]:
    transcript: list[dict[str, Any]] = control.chat(chat_id)["transcript"]  # type: ignore[assignment]
    return transcript


def upstream_texts(control: EmulatorControl, chat_id: str) -> list[str]:
    transcript: list[dict[str, Any]] = control.chat(chat_id)["transcript"]  # type: ignore[assignment]
    return [entry["text"] for entry in transcript if entry["type"] == "Text"]


def agent_name(control: EmulatorControl, chat_id: str) -> str:
    name: str = control.chat(chat_id)["agent"]  # type: ignore[assignment]
    return name


def log_position(control: EmulatorControl) -> int:
    seq: int = control.http.get("/requests", params={"since": 2**40}).json()["last_seq"]
    return seq


def operations(control: EmulatorControl, chat_id: str, since: int) -> list[str]:
    """operationName of every upstream POST for the chat after log position `since`."""
    entries = control.http.get("/requests", params={"since": since}).json()["requests"]
    found = []
    for entry in entries:
        if entry["method"] == "POST" and entry["chat_id"] == chat_id:
            match = re.search(r'"operationName"\s*:\s*"(\w+)"', entry["body"])
            if match:
                found.append(match.group(1))
    return found


def sse_streams(server: ServerProcess) -> float:
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    match = re.search(r"^bff_sse_streams (\S+)$", metrics, re.MULTILINE)
    assert match, "bff_sse_streams missing from /metrics"
    return float(match.group(1))


AXE = Axe()  # axe-core, as bundled by axe-playwright-python


def settle(page: Page) -> None:
    """Until the widget's transitions are over (the endless pulses stay)."""
    page.locator("#chat-bff-widget").evaluate(
        """host => Promise.all(host.shadowRoot.getAnimations()
            .filter(a => a.effect.getTiming().iterations !== Infinity)
            .map(a => a.finished))"""
    )


def audit(page: Page, state: str) -> None:
    settle(page)  # contrast is judged once the panel has faded in
    results = AXE.run(page)
    found = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
    ]
    assert found == [], f"{state}: {found}"
