"""`/docs` (Swagger UI), `/redoc` and the emulator's `/_emulator/docs` render with the network
cut off: Chromium aborts every request that leaves the loopback, and the pages must still show
their operations, try nothing the network or their own Content-Security-Policy refuses, and
log no console error."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from harness.servers import ServerProcess

pytestmark = pytest.mark.browser

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture
def offline(context: BrowserContext) -> list[str]:
    """Every request to a host off this machine is aborted, and recorded."""
    left: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname not in LOOPBACK:
            left.append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", only_loopback)
    return left


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    """Console errors of the page, a request its own Content-Security-Policy refused included
    (Chromium reports those on the console, not as requests)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_swagger_ui_renders_every_operation_offline(
    page: Page, bff: ServerProcess, offline: list[str], console_errors: list[str]
) -> None:
    page.goto(bff.url + "/docs")
    operations = page.locator(".opblock .opblock-summary-path")
    expect(operations.filter(has_text="/api/v2/chats/{handle}/messages")).to_have_count(1)
    paths = {p.strip().replace("\u200b", "") for p in operations.all_inner_texts()}
    assert {
        "/api/v2/chats",
        "/api/v2/chats/{handle}",
        "/api/v2/chats/{handle}/messages",
        "/api/v2/chats/{handle}/events",
        "/api/v2/me/chat/{handle}",
        "/api/v2/me/chat/{handle}/messages",
    } <= paths
    # Open one operation: its typed parameters and documented errors are rendered.
    page.locator(".opblock-summary-path", has_text="/api/v2/chats/{handle}/messages").first.click()
    body = page.locator(".opblock.is-open")
    expect(body.locator(".parameters-col_name", has_text="index")).to_have_count(1)
    expect(body.locator(".response-col_status", has_text="400")).to_have_count(1)
    for schema in ("Chat", "Participant", "Message", "MessageEvent", "Error"):
        expect(page.get_by_role("button", name=schema, exact=True)).to_be_visible()
    # Anything the page fetches late (fonts, images, a validator badge) has been tried.
    page.wait_for_load_state("networkidle")
    assert offline == [], offline
    assert console_errors == [], console_errors


def test_redoc_renders_offline(
    page: Page, bff: ServerProcess, offline: list[str], console_errors: list[str]
) -> None:
    page.goto(bff.url + "/redoc")
    expect(page.get_by_role("heading", name="RequestChat")).to_be_visible()
    expect(page.get_by_role("heading", name="Chat events (SSE)")).to_be_visible()
    # The footer's logo, from Redocly's CDN as shipped, is the bundle's own image now.
    expect(page.get_by_alt_text("redocly logo")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert offline == [], offline
    assert console_errors == [], console_errors


def test_the_emulators_docs_render_offline(
    page: Page, emulator: ServerProcess, offline: list[str], console_errors: list[str]
) -> None:
    page.goto(emulator.url + "/_emulator/docs")
    operations = page.locator(".opblock .opblock-summary-path")
    expect(operations.first).to_be_visible()
    paths = {p.strip().replace("\u200b", "") for p in operations.all_inner_texts()}
    assert any(p.startswith("/_emulator/") for p in paths), paths
    page.wait_for_load_state("networkidle")
    assert offline == [], offline
    assert console_errors == [], console_errors
