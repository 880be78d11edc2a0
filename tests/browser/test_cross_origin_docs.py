"""`/docs` (Swagger UI) and `/redoc` render with the network cut off: Chromium aborts every
request that leaves the loopback, and the pages must still show chat-bff's operations."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.servers import ServerProcess

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


def test_swagger_ui_renders_every_operation_offline(
    page: Page, bff: ServerProcess, offline: list[str]
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
    assert offline == [], offline


def test_redoc_renders_offline(page: Page, bff: ServerProcess, offline: list[str]) -> None:
    page.goto(bff.url + "/redoc")
    expect(page.get_by_role("heading", name="RequestChat")).to_be_visible()
    expect(page.get_by_role("heading", name="Chat events (SSE)")).to_be_visible()
    assert offline == [], offline
