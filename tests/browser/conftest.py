"""Headless Chromium (Debian's, never a downloaded one) driven by Playwright, against real
chat-bff processes that serve the widget and its demo page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff, start_emulator
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, WIDGET_BFF
from tests.components import missing_component

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing_component(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """One browser profile: its tabs share sessionStorage rules, Web Locks, BroadcastChannel."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


# A chat-bff whose emulator's agent never joins by itself: the tests make it join, speak and
# leave through the control API, so waiting lasts exactly as long as they need.
@pytest.fixture(scope="module")
def held_emulator() -> Iterator[ServerProcess]:
    server = start_emulator("--agent-join-delay", "3600", "--agent-reply-delay", "0.2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def held_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(held_emulator.url, **WIDGET_BFF)
    yield server
    server.stop()


@pytest.fixture
def held(held_emulator: ServerProcess) -> Iterator[EmulatorControl]:
    control = EmulatorControl(held_emulator.url)
    yield control
    control.http.close()
