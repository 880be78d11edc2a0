"""The screenshots of the widget in the README and docs/widget.md, taken from real processes:
`python -m tests.browser.shots [out_dir]` (default: docs/).

Desktop mid-chat, a phone while waiting for an agent, Arabic (right to left) mid-chat, the
survey after a chat and an invitation (the demo page with `data-survey` and
`data-invite-after` added to its tag on the way to the browser).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, Route, expect, sync_playwright

from harness.emulator import EmulatorControl
from harness.servers import start_bff, start_emulator
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.browser.widget import Widget, upstream_chat_id


def chat(page: Page, url: str, control: EmulatorControl, nickname: str, subject: str) -> str:
    widget = Widget(page)
    page.goto(url)
    widget.start(nickname, subject)
    return upstream_chat_id(control, nickname)


def with_attributes(page: Page, url: str, attrs: str) -> None:
    """The demo page at `url`, its widget tag given `attrs` on the way to the browser."""

    def add(route: Route) -> None:
        answer = route.fetch()
        body = answer.text().replace(
            'data-fields="email,order"', f'data-fields="email,order" {attrs}'
        )
        route.fulfill(response=answer, body=body)

    page.route(url, add)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    emulator = start_emulator("--agent-join-delay", "3600")
    bff = start_bff(emulator.url)
    control = EmulatorControl(emulator.url)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

            desktop = browser.new_page(viewport={"width": 1280, "height": 800})
            chat_id = chat(desktop, bff.url + "/", control, "Jamie", "My order hasn't arrived")
            control.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True})
            control.agent_say(
                chat_id, "I'm sorry to hear that. Could you give me the order number?"
            )
            Widget(desktop).send("It's 10-4417, ordered last Monday.")
            control.agent_say(
                chat_id,
                "Thanks! It left our warehouse yesterday: https://track.example.com/10-4417",
            )
            control.http.post(f"/chats/{chat_id}/agent/typing", json={"typing": True})
            desktop.wait_for_timeout(1500)
            desktop.screenshot(path=str(out / "screenshot.png"))

            phone = browser.new_page(viewport={"width": 390, "height": 760}, is_mobile=True)
            chat(phone, bff.url + "/", control, "Robin", "Does the Cedar jacket run small?")
            phone.wait_for_timeout(4200)
            phone.screenshot(path=str(out / "widget-phone.png"))

            arabic = browser.new_page(viewport={"width": 1280, "height": 800})
            chat_id = chat(arabic, bff.url + "/?lang=ar", control, "لينا", "متى يصل طلبي؟")
            control.http.post(f"/chats/{chat_id}/agent/join", json={"greet": False})
            control.agent_say(chat_id, "مرحبًا لينا، سأتحقق من طلبك الآن.")
            Widget(arabic).send("شكرًا، رقم الطلب 4417.")
            arabic.wait_for_timeout(1500)
            arabic.screenshot(path=str(out / "widget-rtl.png"))

            rating = browser.new_page(viewport={"width": 1280, "height": 800})
            with_attributes(rating, bff.url + "/", "data-survey")
            chat_id = chat(rating, bff.url + "/", control, "Sam", "Can I return worn boots?")
            control.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True})
            control.agent_say(chat_id, "Within 60 days, yes, even worn outside.")
            Widget(rating).send("Great, thank you!")
            Widget(rating).end_chat()
            rating.get_by_role("radio", name="5 Excellent").check()
            rating.get_by_label("Anything you'd like to add?").fill("Quick and clear answer.")
            rating.wait_for_timeout(500)
            rating.screenshot(path=str(out / "widget-survey.png"))

            inviting = browser.new_page(viewport={"width": 1280, "height": 800})
            with_attributes(inviting, bff.url + "/", 'data-invite-after="1"')
            inviting.goto(bff.url + "/")
            expect(inviting.locator(".cb-bubble-invite")).to_be_visible()
            inviting.wait_for_timeout(500)
            inviting.screenshot(path=str(out / "widget-invite.png"))
            browser.close()
    finally:
        bff.stop()
        emulator.stop()
        control.http.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
