"""A page on another origin runs a whole chat through chat-bff with a third-party-style jQuery
client (its own API-key header on every call, cookies sent along, RequestChat with a trailing
slash, the overview page's `/me/chat` polling paths), plus an SSE stream with credentials; and
a page on an origin that is not listed gets nothing through.

Real parts only: headless Chromium, the page's own web server on another loopback port, a
chat-bff process with that origin in BFF_ALLOWED_ORIGINS, and jQuery itself (from the
xstatic-jquery package, so nothing is fetched at test time)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xstatic.pkg.jquery
from playwright.sync_api import Page

from app.emulator.agent import REPLIES
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, free_port, start_bff

pytestmark = pytest.mark.browser

PAGE_FILES = Path(__file__).resolve().parent / "cross_origin"

JOURNEY = """
async ({bff, nickname, reply}) => {
  const client = new GmsChatClient({
    baseUrl: bff, apiKey: "site-key-4711", contactCenterId: "kept-from-the-old-config"});
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (what, check) => {
    for (let i = 0; i < 100; i++) { if (await check()) return; await sleep(200); }
    throw new Error("timed out waiting for " + what);
  };
  const out = {polled: [], streamed: [], states: [], ended: false};
  try {
    const created = await client.requestChat(nickname, "Cross-origin");
    out.id = created.id;
    out.path = created.path;
    const stream = new EventSource(
      bff + "/api/v2/chats/" + created.id + "/events", {withCredentials: true});
    stream.addEventListener("state", (e) => out.states.push(JSON.parse(e.data).state));
    stream.addEventListener("message", (e) => out.streamed.push(Number(e.lastEventId)));
    const ended = new Promise((resolve) => stream.addEventListener("end", () => {
      out.ended = true; stream.close(); resolve();
    }));
    const poll = async () => {
      const answer = await client.pollMessages(created.id);
      out.polled.push(...answer.messages);
    };
    await until("the agent",
      async () => (await client.pollChat(created.id)).chat.state === "Chatting");
    await client.sendMessage(created.id, "Where is my order?");
    await until("the agent's reply", async () => {
      await poll();
      return out.polled.some((m) => m.type === "Text" && m.text === reply);
    });
    await client.complete(created.id);
    out.finalState = (await client.getChat(created.id)).chat.state;
    await Promise.race([ended, sleep(10000)]);
  } catch (error) {
    // jQuery rejects with its jqXHR: status 0 when the browser blocked the answer.
    out.error = error && error.status !== undefined
      ? {status: error.status, statusText: error.statusText}
      : String(error);
  }
  return out;
}
"""


class PageServer:
    """The page's own web server (the Python standard library's) on a loopback port."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.origin + "/index.html", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the page server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    for name in ("index.html", "gms-chat-client.js"):
        shutil.copy(PAGE_FILES / name, root / name)
    shutil.copy(Path(xstatic.pkg.jquery.BASE_DIR) / "jquery.min.js", root / "jquery.min.js")
    return root


@pytest.fixture(scope="module")
def shop(site: Path) -> Iterator[PageServer]:
    server = PageServer(site)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stranger(site: Path) -> Iterator[PageServer]:
    """The same page served from an origin nobody listed."""
    server = PageServer(site)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bff_for_shop(emulator: ServerProcess, shop: PageServer) -> Iterator[ServerProcess]:
    server = start_bff(emulator.url, BFF_ALLOWED_ORIGINS=shop.origin)
    yield server
    server.stop()


def preflights(bff: ServerProcess) -> float:
    """Preflights chat-bff answered: 204s, counted under the route each was for (nothing
    else answers 204)."""
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    found = re.findall(r'bff_http_requests_total\{route="[^"]*",status="204"\} (\S+)', text)
    return sum(float(n) for n in found)


def test_third_party_jquery_client_on_another_origin_runs_a_whole_chat(
    page: Page, shop: PageServer, bff_for_shop: ServerProcess, control: EmulatorControl
) -> None:
    before = preflights(bff_for_shop)
    page.goto(shop.origin + "/index.html")
    assert page.evaluate("jQuery.fn.jquery") == "3.7.1"
    out: dict[str, Any] = page.evaluate(
        JOURNEY, {"bff": bff_for_shop.url, "nickname": "Robin", "reply": REPLIES[0]}
    )
    assert "error" not in out, out
    assert out["path"] == f"/api/v2/chats/{out['id']}"
    # Index-less polling, like the sample client: every entry exactly once, in order.
    indices = [m["index"] for m in out["polled"]]
    assert indices == sorted(set(indices)), indices
    texts = [m.get("text") for m in out["polled"] if m["type"] == "Text"]
    assert "Where is my order?" in texts
    assert REPLIES[0] in texts
    assert out["finalState"] == "Idle"
    # The stream, cross-origin with credentials: state first, every message once, then end.
    assert out["states"][0] in ("WaitingForAgent", "Chatting")
    assert out["ended"] is True
    assert out["streamed"] == sorted(set(out["streamed"]))
    assert set(indices) <= set(out["streamed"])
    # Each new URL with the client's own headers took a preflight, and each one succeeded.
    assert preflights(bff_for_shop) - before >= 4


def test_a_page_on_an_unlisted_origin_gets_nothing_through(
    page: Page, stranger: PageServer, bff_for_shop: ServerProcess, control: EmulatorControl
) -> None:
    posts = control.count("POST")
    page.goto(stranger.origin + "/index.html")
    out: dict[str, Any] = page.evaluate(
        JOURNEY, {"bff": bff_for_shop.url, "nickname": "Mallory", "reply": REPLIES[0]}
    )
    assert out["error"] == {"status": 0, "statusText": "error"}, out
    assert "id" not in out
    assert control.count("POST") == posts  # nothing reached the upstream
    # What the browser was told (it hides it from the page): a JSON 403 on the preflight.
    answer = httpx.options(
        bff_for_shop.url + "/api/v2/chats/",
        headers={
            "Origin": stranger.origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "contactcenterid, content-type, x-api-key",
        },
        timeout=5,
    )
    assert answer.status_code == 403
    assert answer.json() == {"statusCode": 3, "statusMessage": "Origin not allowed"}
