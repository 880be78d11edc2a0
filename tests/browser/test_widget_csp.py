"""The widget on a shop page served with a strict Content-Security-Policy: exactly
`default-src 'self'; style-src 'self'; script-src 'self'`, each plus chat-bff's origin (the
directives docs/widget.md tells embedders to add). The page lives on another origin, as an
embedder's does; any violation the browser reports fails the test. The optional parts load
and run under it too: the invitation, the survey and the transcript in the whole chat, the
long-poll fallback and leaving a message in the other test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from app.emulator.agent import REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, free_port, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.widget import Widget, agent_name, unique, upstream_chat_id, upstream_texts

pytestmark = pytest.mark.browser

SHOP = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Strict shop</title></head>
<body>
<main><h1>Strict shop</h1><p>A page that allows no inline script or style.</p></main>
<script src="{bff}/static/widget.js" defer data-title="Strict shop" data-color="#7c3aed"
        data-fields="email" data-survey></script>
</body>
</html>
"""


def policy(bff_origin: str) -> str:
    return (
        f"default-src 'self' {bff_origin}; style-src 'self' {bff_origin}; "
        f"script-src 'self' {bff_origin}"
    )


class ShopServer:
    """A real HTTP server for the embedder's page, on its own loopback origin."""

    def __init__(self, port: int, bff_origin: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        body = SHOP.format(bff=bff_origin).encode()
        header = policy(bff_origin)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", header)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ShopServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def shop_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def strict_bff(emulator: ServerProcess, shop_port: int) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url, BFF_ALLOWED_ORIGINS=f"http://127.0.0.1:{shop_port}", **WIDGET_BFF
    )
    yield server
    server.stop()


def watch_violations(page: Page) -> list[str]:
    violations: list[str] = []
    page.expose_function("__cspViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => window.__cspViolation("
        "e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber), true)"
    )

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", console)
    return violations


def test_the_whole_chat_works_under_a_strict_policy(
    page: Page, strict_bff: ServerProcess, shop_port: int, control: EmulatorControl
) -> None:
    violations = watch_violations(page)
    widget = Widget(page)
    with ShopServer(shop_port, strict_bff.url) as shop:
        response = page.goto(shop.url + "/")
        assert response and response.headers["content-security-policy"] == policy(strict_bff.url)
        launcher = widget.loc(".cb-launcher")
        expect(launcher).to_be_visible()
        assert launcher.evaluate("el => getComputedStyle(el).position") == "fixed"  # styled
        assert (
            launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(124, 58, 237)"
        )
        page.evaluate("ChatBff.invite('Strict, but friendly?')")
        expect(page.get_by_role("button", name="Strict, but friendly?")).to_be_visible()

        nickname = unique("Max")
        widget.start(nickname, "Under a strict policy", email="max@example.com")
        expect(widget.loc(".cb-wait")).to_be_visible()
        chat_id = upstream_chat_id(control, nickname)
        agent = agent_name(control, chat_id)
        widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
        widget.input.fill("A long message\nover\nseveral lines")  # the composer grows
        widget.input.press("Enter")
        widget.expect_text("A long message\nover\nseveral lines")
        widget.expect_text(REPLIES[0])
        assert widget.texts() == upstream_texts(control, chat_id)

        widget.end_chat()
        expect(page.get_by_role("group", name="How was your chat?")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("button", name="Download transcript").click()
        assert "You: Under a strict policy" in download.value.path().read_text("utf-8-sig")
        page.get_by_role("button", name="Start a new chat").click()
        expect(widget.loc("#cb-f-nickname")).to_be_focused()

        assert violations == []
        assert widget.errors == []


def test_the_fallbacks_work_under_a_strict_policy(
    page: Page, strict_bff: ServerProcess, shop_port: int, control: EmulatorControl
) -> None:
    """Without EventSource the chat long-polls (poll.js); with the contact center down, the
    form leaves a message (offline.js)."""
    violations = watch_violations(page)
    page.add_init_script("delete window.EventSource")
    widget = Widget(page)
    with ShopServer(shop_port, strict_bff.url) as shop:
        page.goto(shop.url + "/")
        nickname = unique("Mia")
        widget.start(nickname, "Polling under a strict policy")
        chat_id = upstream_chat_id(control, nickname)
        widget.expect_text(
            f"Hello {nickname}, my name is {agent_name(control, chat_id)}. How can I help you?"
        )
        assert any("/static/poll.js" in url for url in widget.requests)
        assert widget.streams == []
        widget.end_chat()
        page.get_by_role("button", name="Start a new chat").click()
        widget.loc("#cb-f-nickname").fill(unique("Mia"))
        widget.loc("#cb-f-subject").fill("Anyone there?")
        control.faults(outage=True)
        try:
            widget.loc("#cb-f-nickname").press("Enter")
            expect(page.get_by_role("button", name="Send message")).to_be_visible()
            expect(widget.loc("#cb-f-email")).to_be_focused()
        finally:
            control.clear_faults()
        assert violations == []
        assert widget.errors == []
