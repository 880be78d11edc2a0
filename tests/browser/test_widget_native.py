"""Readable and native: text sizes and contrast, times through Intl in the page's language,
French, Spanish and a mirrored Arabic layout, and a page that stays still behind the phone
panel."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess
from tests.browser.widget import Widget, agent_name, unique, upstream_chat_id

pytestmark = pytest.mark.browser

# Every element of the widget that shows text of its own: its size, and its contrast against
# the first opaque background behind it (WCAG 2 relative luminance).
TEXT_METRICS = """root => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b]
    .map((v) => v / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el && el.nodeType === 1; el = el.parentNode || el.host) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c;
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of root.querySelectorAll("*")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility() || el.closest("svg")) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    out.push({
      cls: el.className || el.tagName.toLowerCase(),
      text: el.textContent.trim().slice(0, 40),
      size: parseFloat(style.fontSize),
      contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
    });
  }
  return out;
}"""

SYSTEM_LINES = ("cb-sys", "cb-typing", "cb-banner", "cb-error", "cb-note")


def test_text_is_large_enough_and_readable(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/")
    nickname = unique("Kai")
    widget.start(nickname, "Readability")
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    control.http.post(f"/chats/{chat_id}/agent/typing", json={"typing": True}).raise_for_status()
    expect(widget.loc(".cb-typing")).to_be_visible()
    metrics = page.locator("#chat-bff-widget").evaluate(
        f"host => ({TEXT_METRICS})(host.shadowRoot)"
    )
    seen = {m["cls"].split()[0] for m in metrics}
    assert {"cb-who", "cb-sys", "cb-typing", "cb-bubble", "time", "cb-sub-text"} <= seen, seen
    for m in metrics:
        assert m["size"] >= 12, m
        assert m["contrast"] >= 4.5, m
        if m["cls"].split()[0] in SYSTEM_LINES:
            assert m["size"] >= 14, m
    assert widget.errors == []


@pytest.mark.parametrize(
    ("lang", "open_label", "start_label", "joined"),
    [
        ("fr", "Ouvrir le chat", "Démarrer le chat", "{} a rejoint la conversation"),
        ("es", "Abrir el chat", "Iniciar chat", "{} se ha unido al chat"),
    ],
)
def test_french_and_spanish_with_times_in_the_pages_language(
    page: Page,
    bff: ServerProcess,
    control: EmulatorControl,
    lang: str,
    open_label: str,
    start_label: str,
    joined: str,
) -> None:
    widget = Widget(page)
    page.goto(bff.url + f"/?lang={lang}")
    expect(widget.loc(".cb-launcher")).to_have_attribute("aria-label", open_label)
    widget.open()
    expect(page.get_by_role("button", name=start_label)).to_be_visible()
    nickname = unique("Lou")
    widget.start(nickname, "Bonjour / Hola")
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    expect(widget.loc(".cb-sys").filter(has_text=joined.format(agent))).to_have_count(1)
    time = widget.loc(".cb-them time").first
    expect(time).to_be_visible()
    stamp = time.get_attribute("datetime")
    expected = page.evaluate(
        "([iso, lang]) => new Intl.DateTimeFormat(lang, {timeStyle: 'short'})"
        ".format(new Date(iso))",
        [stamp, lang],
    )
    assert time.inner_text() == expected
    assert re.fullmatch(r"\d{1,2}:\d{2}", expected)  # 24-hour clock, no "AM"
    assert widget.loc(".cb").get_attribute("dir") == "ltr"
    assert widget.errors == []


def test_arabic_is_mirrored_right_to_left(
    page: Page, bff: ServerProcess, control: EmulatorControl
) -> None:
    widget = Widget(page)
    page.goto(bff.url + "/?lang=ar")
    launcher = widget.loc(".cb-launcher")
    expect(launcher).to_have_attribute("aria-label", "فتح المحادثة")
    assert widget.loc(".cb").get_attribute("dir") == "rtl"
    box = launcher.bounding_box()
    assert box and box["x"] < 100  # bottom left, where a right-to-left reader looks last
    widget.open()
    panel = widget.loc(".cb-panel").bounding_box()
    assert panel and panel["x"] < 100
    nickname = unique("Lina")
    widget.start(nickname, "مرحبا")
    chat_id = upstream_chat_id(control, nickname)
    agent = agent_name(control, chat_id)
    widget.expect_text(f"Hello {nickname}, my name is {agent}. How can I help you?")
    expect(widget.loc(".cb-sys").filter(has_text=f"انضم {agent} إلى المحادثة")).to_have_count(1)
    mine = widget.loc(".cb-subject .cb-bubble").bounding_box()
    theirs = widget.loc(".cb-them .cb-bubble").first.bounding_box()
    assert mine and theirs and mine["x"] < theirs["x"]  # own messages on the left
    send = widget.loc(".cb-send svg").evaluate("el => getComputedStyle(el).transform")
    assert send == "matrix(-1, 0, 0, 1, 0, 0)"  # the arrow points left
    title = widget.loc("#cb-title").bounding_box()
    # (The panel's own button: the open panel's launcher minimises too, under the same name.)
    minimise = page.get_by_role("dialog").get_by_role("button", name="تصغير المحادثة")
    minimise = minimise.bounding_box()
    assert title and minimise and minimise["x"] < title["x"]  # header buttons on the left
    assert widget.errors == []


def test_the_page_behind_the_phone_panel_does_not_scroll(
    browser: Browser, bff: ServerProcess
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 760}, is_mobile=True)
    try:
        page = context.new_page()
        widget = Widget(page)
        page.goto(bff.url + "/")
        widget.open()
        page.mouse.move(195, 40)  # over the panel's header
        page.mouse.wheel(0, 900)
        page.wait_for_timeout(300)
        assert page.evaluate("window.scrollY") == 0
        page.get_by_role("dialog").get_by_role("button", name="Minimise chat").click()
        page.mouse.move(195, 300)
        page.mouse.wheel(0, 900)
        page.wait_for_function("window.scrollY > 0")  # the same gesture scrolls once it is closed
        assert widget.errors == []
    finally:
        context.close()
