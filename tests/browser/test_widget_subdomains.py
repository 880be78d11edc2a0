"""One chat across the subdomains of a site, opt-in with `data-cookie-domain`: a chat started
on www.shop.test continues on help.shop.test (Chromium resolves *.shop.test to loopback, where
one embedder's site answers under every name), through a first-party cookie on shop.test that
holds the handle and its expiry, and never what the customer wrote. Without the attribute each
subdomain keeps its own chats. Over plain http the cookie has no Secure attribute (and the
pages are no secure context, which the widget also handles: no Web Locks); over https it
has.

The https pages are served by Playwright from the same site (a real TLS server would need a
certificate Chromium trusts); Chromium's Local Network Access checks are off in this module's
browser, since there a public-looking https page reaches chat-bff on loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from urllib.parse import unquote, urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Route, expect, sync_playwright

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, WIDGET_BFF
from tests.browser.pages import Pages
from tests.browser.widget import Widget, unique, upstream_chat_id, upstream_texts
from tests.components import missing_component

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium with every *.shop.test name on loopback (overrides the package's browser)."""
    if not CHROMIUM.exists():
        missing_component(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                "--host-resolver-rules=MAP *.shop.test 127.0.0.1",
                "--disable-features=LocalNetworkAccessChecks",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site() -> Iterator[Pages]:
    with Pages() as pages:
        yield pages


@pytest.fixture(scope="module")
def open_bff(held_emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(held_emulator.url, BFF_ALLOWED_ORIGINS="*", **WIDGET_BFF)
    yield server
    server.stop()


def url(site: Pages, host: str, bff: ServerProcess, **attrs: str) -> str:
    return site.at(host) + "/?" + urlencode({"server": bff.url, **attrs})


def test_a_chat_started_on_www_continues_on_help(
    context: BrowserContext, open_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    shared = {"cookie-domain": ".shop.test"}
    widget = Widget(context.new_page())
    widget.page.goto(url(site, "www.shop.test", open_bff, **shared))
    nickname = unique("Uma")
    widget.start(nickname, "Which size fits me?")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    greeting = f"Hello {nickname}, my name is {held.chat(chat_id)['agent']}. How can I help you?"
    widget.expect_text(greeting)
    widget.send("I'm usually an M")
    widget.expect_text("I'm usually an M")

    # The cookie: on the site's domain, Lax, for the restore window, with nothing written.
    (cookie,) = [c for c in context.cookies() if c["name"].startswith("chat-bff")]
    assert unquote(cookie["name"]) == f"chat-bff|{open_bff.url}|"
    assert cookie["domain"] == ".shop.test"
    assert cookie["path"] == "/"
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False and cookie["httpOnly"] is False
    assert 9 * 60 < cookie["expires"] - time.time() <= 10 * 60
    value = json.loads(unquote(cookie["value"]))
    assert set(value) == {"h", "i", "x", "n", "s"} and set(value["i"]) <= {"t", "m"}
    assert "size" not in unquote(cookie["value"]) and nickname not in unquote(cookie["value"])

    # The help centre, another subdomain: the same chat, whole, and it goes on there.
    widget.page.goto(url(site, "help.shop.test", open_bff, **shared))
    widget.open()
    widget.expect_text(greeting)
    widget.expect_text("I'm usually an M")
    widget.send("Asked from the help centre")
    widget.expect_text("Asked from the help centre")
    held.agent_say(chat_id, "M will fit")
    widget.expect_text("M will fit")
    assert widget.texts() == upstream_texts(held, chat_id)

    # Ended on help: the cookie goes, and www starts afresh.
    widget.end_chat()
    assert not [c for c in context.cookies() if c["name"].startswith("chat-bff")]
    fresh = Widget(context.new_page())
    fresh.page.goto(url(site, "www.shop.test", open_bff, **shared))
    fresh.open()
    expect(fresh.page.get_by_role("button", name="Start chat")).to_be_visible()
    assert widget.errors == fresh.errors == []


def test_without_the_attribute_each_subdomain_keeps_its_own(
    context: BrowserContext, open_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    widget = Widget(context.new_page())
    widget.page.goto(url(site, "www.shop.test", open_bff))
    widget.start(unique("Vic"), "Only on www")
    assert not [c for c in context.cookies() if c["name"].startswith("chat-bff")]
    widget.page.goto(url(site, "help.shop.test", open_bff))
    widget.open()
    expect(widget.page.get_by_role("button", name="Start chat")).to_be_visible()
    # Back on www, its chat is still there.
    widget.page.goto(url(site, "www.shop.test", open_bff))
    widget.open()
    expect(widget.loc(".cb-subject .cb-bubble")).to_have_text("Only on www")
    assert widget.errors == []


def test_over_https_the_cookie_is_secure(
    context: BrowserContext, open_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    def from_the_site(route: Route) -> None:
        path = "/" + route.request.url.split("/", 3)[3]
        route.fulfill(response=route.fetch(url=site.url + path))

    context.route(re.compile(r"^https://(www|help)\.shop\.test/"), from_the_site)
    query = "/?" + urlencode({"server": open_bff.url, "cookie-domain": "shop.test"})
    widget = Widget(context.new_page())
    widget.page.goto("https://www.shop.test" + query)
    assert widget.page.evaluate("isSecureContext") is True
    nickname = unique("Xan")
    widget.start(nickname, "Secure, please")
    chat_id = upstream_chat_id(held, nickname)
    held.agent_say(chat_id, "Over https")
    widget.expect_text("Over https")
    (cookie,) = [c for c in context.cookies() if c["name"].startswith("chat-bff")]
    assert cookie["secure"] is True and cookie["sameSite"] == "Lax"
    assert cookie["domain"] == ".shop.test"
    widget.page.goto("https://help.shop.test" + query)
    widget.open()
    widget.expect_text("Over https")
    expect(widget.loc(".cb-subject")).to_have_count(0)  # the question stayed on www
    assert widget.errors == []


KEY = re.compile(r'^"[0-9a-z]{32}"$')  # 128 random bits, 8 base-36 digits per 32-bit word


def test_keys_made_outside_a_secure_context_are_128_bit(
    context: BrowserContext, open_bff: ServerProcess, site: Pages
) -> None:
    page = context.new_page()
    keys: list[str] = []
    # RequestChat and SendMessage carry keys (typing notices need none).
    page.on(
        "request",
        lambda r: (
            r.method == "POST"
            and re.search(r'"(RequestChat|SendMessage)"', r.post_data or "") is not None
            and keys.append(r.headers.get("idempotency-key") or "")
        ),
    )
    widget = Widget(page)
    page.goto(url(site, "www.shop.test", open_bff))
    assert page.evaluate("isSecureContext") is False
    widget.start(unique("Wes"), "Keys")
    widget.send("One")
    widget.expect_text("One")
    assert len(keys) == 2 and all(KEY.match(k) for k in keys), keys
    assert len(set(keys)) == len(keys)
