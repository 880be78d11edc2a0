"""Proactive invitations, opt-in with `data-invite-after` (seconds on the site, counted across
the pages of a tab) or `ChatBff.invite(text)`: a bubble by the launcher, announced politely,
reached by keyboard, dismissible, shown at most once per session, and never while a chat runs,
while the chat is closed, or with motion for a customer who asked for less. Clean for axe-core.

Times are counted by the widget's own counter of seconds on the site (in sessionStorage), not
by the test's clock: "not shown" is checked once that counter is past the delay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.pages import Pages
from tests.browser.widget import Widget, audit, unique

pytestmark = pytest.mark.browser

TEXT = "Questions? We're here to help."
EVENTS = """
window.__events = [];
for (const name of ["invite-shown", "invite-accepted", "opened", "started"])
  addEventListener("chat-bff:" + name, () => window.__events.push(name));
"""


@pytest.fixture(scope="module")
def site() -> Iterator[Pages]:
    with Pages() as pages:
        yield pages


@pytest.fixture(scope="module")
def open_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(held_emulator.url, BFF_ALLOWED_ORIGINS="*", **WIDGET_BFF)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def closed_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    today = datetime.now(UTC).date()
    hours = (
        f"UTC; Mon-Sun 00:00-24:00; closed {today - timedelta(days=1)}..{today + timedelta(days=1)}"
    )
    server = start_bff(
        held_emulator.url, BFF_ALLOWED_ORIGINS="*", BFF_BUSINESS_HOURS=hours, **WIDGET_BFF
    )
    yield server
    server.stop()


@pytest.fixture
def observed(context: BrowserContext) -> BrowserContext:
    context.add_init_script(EVENTS)
    return context


def url(site: Pages, bff: ServerProcess, path: str = "/", **attrs: str) -> str:
    return site.url + path + "?" + urlencode({"server": bff.url, **attrs})


def seconds_on_site(page: Page, bff: ServerProcess) -> int:
    value = page.evaluate("key => sessionStorage.getItem(key)", f"chat-bff|{bff.url}|it")
    return int(value or 0)


def wait_past(page: Page, bff: ServerProcess, seconds: int) -> None:
    page.wait_for_function(
        "([key, n]) => +sessionStorage.getItem(key) >= n",
        arg=[f"chat-bff|{bff.url}|it", seconds],
        timeout=30_000,
    )


def test_shown_after_the_time_on_the_site_then_accepted_by_keyboard(
    observed: BrowserContext, open_bff: ServerProcess, site: Pages
) -> None:
    page = observed.new_page()
    widget = Widget(page)
    page.goto(url(site, open_bff, "/shoes", **{"invite-after": "4"}))
    region = widget.loc(".cb-invite")
    expect(region).to_have_attribute("aria-live", "polite")  # there before the words come
    expect(region).to_be_empty()
    wait_past(page, open_bff, 2)
    # Counted across the pages of the tab: the next page goes on from there.
    page.goto(url(site, open_bff, "/boots", **{"invite-after": "4"}))
    assert seconds_on_site(page, open_bff) >= 2
    bubble = region.get_by_role("button", name=TEXT)
    expect(bubble).to_be_visible()
    assert seconds_on_site(page, open_bff) >= 4
    assert page.evaluate("window.__events") == ["invite-shown"]
    audit(page, "invitation")

    # Keyboard: reached before the launcher; Enter opens the chat, ready to type.
    focused = "el => el.matches(':focus')"
    for _ in range(10):
        page.keyboard.press("Tab")
        if bubble.evaluate(focused):
            break
    else:
        raise AssertionError("Tab never reached the invitation")
    page.keyboard.press("Tab")
    expect(region.get_by_role("button", name="Dismiss")).to_be_focused()
    page.keyboard.press("Tab")
    expect(widget.loc(".cb-launcher")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(widget.loc(".cb-panel")).to_be_visible()
    expect(widget.loc("#cb-f-nickname")).to_be_focused()
    expect(region).to_be_empty()
    assert page.evaluate("window.__events") == ["invite-shown", "invite-accepted", "opened"]
    assert widget.errors == []


def test_dismissed_it_stays_away_for_the_session(
    observed: BrowserContext, open_bff: ServerProcess, site: Pages
) -> None:
    page = observed.new_page()
    widget = Widget(page)
    page.goto(url(site, open_bff, **{"invite-after": "1"}))
    region = widget.loc(".cb-invite")
    expect(region.get_by_role("button", name=TEXT)).to_be_visible()
    region.get_by_role("button", name="Dismiss").click()
    expect(region).to_be_empty()
    expect(widget.loc(".cb-launcher")).to_be_focused()  # focus not lost with the bubble
    assert page.evaluate("window.__events") == ["invite-shown"]
    page.goto(url(site, open_bff, "/later", **{"invite-after": "1"}))
    wait_past(page, open_bff, seconds_on_site(page, open_bff) + 2)
    expect(region).to_be_empty()
    # ChatBff.invite() does not bring it back either: once per session. (It resolves once
    # it has decided.)
    page.evaluate("ChatBff.invite('Still there?')")
    expect(region).to_be_empty()
    assert page.evaluate("window.__events") == []  # (this page's)
    assert widget.errors == []


def test_escape_dismisses_and_the_page_can_invite_with_its_own_words(
    observed: BrowserContext, open_bff: ServerProcess, site: Pages
) -> None:
    page = observed.new_page()
    widget = Widget(page)
    page.goto(url(site, open_bff))  # no timer: only the page's call
    expect(widget.loc(".cb-launcher")).to_be_visible()
    page.evaluate("ChatBff.invite('Need help choosing a size?')")
    bubble = widget.loc(".cb-invite").get_by_role("button", name="Need help choosing a size?")
    expect(bubble).to_be_visible()
    assert any(u.endswith("/static/invite.js") for u in widget.requests)
    bubble.focus()
    page.keyboard.press("Escape")
    expect(widget.loc(".cb-invite")).to_be_empty()
    expect(widget.loc(".cb-launcher")).to_be_focused()
    assert widget.errors == []


def test_never_while_a_chat_runs(
    observed: BrowserContext, open_bff: ServerProcess, site: Pages
) -> None:
    page = observed.new_page()
    widget = Widget(page)
    page.goto(url(site, open_bff, **{"invite-after": "2"}))
    widget.start(unique("Bea"), "Already chatting")
    widget.loc(".cb-launcher").click()  # minimised: the chat still runs
    expect(widget.loc(".cb-panel")).to_be_hidden()
    wait_past(page, open_bff, 4)
    expect(widget.loc(".cb-invite")).to_be_empty()
    page.evaluate("ChatBff.invite()")  # resolves once it has decided
    expect(widget.loc(".cb-invite")).to_be_empty()
    assert "invite-shown" not in page.evaluate("window.__events")
    assert widget.errors == []


def test_never_while_closed(
    observed: BrowserContext, closed_bff: ServerProcess, site: Pages
) -> None:
    page = observed.new_page()
    widget = Widget(page)
    page.goto(url(site, closed_bff, **{"invite-after": "1"}))
    wait_past(page, closed_bff, 3)
    assert any(u.endswith("/api/v2/availability") for u in widget.requests)  # it asked
    expect(widget.loc(".cb-invite")).to_be_empty()
    assert page.evaluate("window.__events") == []
    assert widget.errors == []


def test_motionless_for_a_customer_who_asked_for_less_motion(
    browser: Browser, open_bff: ServerProcess, site: Pages
) -> None:
    context = browser.new_context(reduced_motion="reduce")
    try:
        page = context.new_page()
        widget = Widget(page)
        page.goto(url(site, open_bff, **{"invite-after": "0"}))
        bubble = widget.loc(".cb-bubble-invite")
        expect(bubble).to_be_visible()
        assert bubble.evaluate("el => el.getAnimations().length") == 0
        assert bubble.evaluate("el => getComputedStyle(el).animationName") == "none"
        assert widget.errors == []
    finally:
        context.close()
