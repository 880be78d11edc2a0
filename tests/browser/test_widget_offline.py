"""Outside opening hours, or while the contact center is down, the widget's form leaves a
message instead of starting a chat; the message reaches the operator's webhook (a real
receiver on loopback that verifies every signature)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.widget import Widget, audit, unique
from tests.webhook_receiver import Delivery, Receiver

pytestmark = pytest.mark.browser

ENV = {**WIDGET_BFF, "BFF_WEBHOOK_RETRY_MIN_S": "0.2", "BFF_WEBHOOK_RETRY_MAX_S": "1.0"}
NEXT_OPEN = (
    "([iso, lang]) => new Intl.DateTimeFormat(lang, "
    "{weekday: 'long', day: 'numeric', month: 'long', hour: 'numeric', minute: '2-digit'})"
    ".format(new Date(iso))"
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def closed_bff(held_emulator: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    today = datetime.now(UTC).date()
    hours = (
        f"UTC; Mon-Sun 00:00-24:00; closed {today - timedelta(days=1)}..{today + timedelta(days=1)}"
    )
    server = start_bff(
        held_emulator.url,
        BFF_BUSINESS_HOURS=hours,
        BFF_OFFLINE_WEBHOOK_URL=receiver.url,
        BFF_OFFLINE_WEBHOOK_SECRET=receiver.secret,
        **ENV,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_bff(held_emulator: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        held_emulator.url,
        BFF_OFFLINE_WEBHOOK_URL=receiver.url,
        BFF_OFFLINE_WEBHOOK_SECRET=receiver.secret,
        **ENV,
    )
    yield server
    server.stop()


# The form's fields as they come, top to bottom.
FIELDS = "els => els.filter(el => el.checkVisibility()).map(el => el.name)"


def fields(widget: Widget) -> list[str]:
    found: list[str] = widget.loc(".cb-form input, .cb-form textarea").evaluate_all(FIELDS)
    return found


def delivered(receiver: Receiver, text: str) -> list[Delivery]:
    def mine(deliveries: list[Delivery]) -> list[Delivery]:
        return [d for d in deliveries if d.status == 200 and d.json()["data"]["text"] == text]

    return mine(receiver.wait_for(lambda deliveries: bool(mine(deliveries))))


def test_closed_hours_turn_the_form_into_a_message_that_reaches_the_operator(
    page: Page, closed_bff: ServerProcess, receiver: Receiver
) -> None:
    widget = Widget(page)
    page.goto(closed_bff.url + "/?lang=fr")
    widget.open()
    hours = httpx.get(closed_bff.url + "/api/v2/availability", timeout=5).json()
    assert hours["open"] is False and hours["nextOpen"]
    when = page.evaluate(NEXT_OPEN, [hours["nextOpen"], "fr"])
    intro = widget.loc(".cb-intro").first
    expect(intro).to_have_text(
        f"Nous sommes fermés pour le moment et de retour le {when}. "
        "Laissez-nous un message, nous vous répondrons par e-mail."
    )
    send = page.get_by_role("button", name="Envoyer le message")
    expect(send).to_be_visible()
    expect(widget.loc("#cb-f-nickname")).to_be_focused()
    # The e-mail address it needs is asked for before the message, not after it.
    assert fields(widget) == ["nickname", "email", "subject", "order"]
    audit(page, "leave-a-message form, closed")

    nickname = unique("Noé")
    text = f"Mon colis n'est pas arrivé ({nickname})"
    widget.loc("#cb-f-nickname").fill(nickname)
    page.get_by_label("Votre message").fill(text)
    email = widget.loc("#cb-f-email")
    assert email.evaluate("el => el.required") is True
    widget.loc("#cb-f-order").fill("1234")
    email.fill("noe@example")  # the browser lets it through; chat-bff does not
    send.click()
    expect(widget.loc(".cb-form .cb-error")).to_have_text("Vérifiez vos informations et réessayez.")
    email.fill("noe@example.com")
    send.click()
    thanks = widget.loc(".cb-thanks")
    expect(thanks).to_have_text(
        "Merci. Nous avons bien reçu votre message et répondrons à noe@example.com."
    )
    expect(thanks).to_be_focused()
    audit(page, "message left")
    # Not one line at the top of a tall empty panel: centred below the header, with a way on.
    close = page.get_by_role("button", name="Fermer")
    expect(close).to_be_visible()
    top, bottom = thanks.bounding_box(), close.bounding_box()
    head, panel = widget.loc(".cb-head").bounding_box(), widget.loc(".cb-panel").bounding_box()
    assert top and bottom and head and panel
    body_middle = (head["y"] + head["height"] + panel["y"] + panel["height"]) / 2
    block_middle = (top["y"] + bottom["y"] + bottom["height"]) / 2
    assert abs(block_middle - body_middle) < 12, (block_middle, body_middle)
    close.click()
    expect(widget.loc(".cb-panel")).to_be_hidden()
    expect(widget.loc(".cb-launcher")).to_be_focused()
    widget.open()  # ready for another message, nothing of the last one left
    expect(send).to_be_visible()
    expect(widget.loc("#cb-f-nickname")).to_have_value("")
    expect(page.get_by_label("Votre message")).to_have_value("")

    (delivery,) = delivered(receiver, text)
    assert delivery.verified
    assert delivery.json()["data"] == {
        "nickname": nickname,
        "email": "noe@example.com",
        "subject": None,
        "text": text,
        "userData": {"order": "1234"},
    }
    assert widget.errors == []


def test_a_contact_center_outage_turns_start_into_a_message(
    page: Page, open_bff: ServerProcess, held: EmulatorControl, receiver: Receiver
) -> None:
    widget = Widget(page)
    page.goto(open_bff.url + "/")
    widget.open()
    expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    assert fields(widget) == ["nickname", "subject", "email", "order"]
    nickname = unique("Olu")
    widget.loc("#cb-f-nickname").fill(nickname)
    widget.loc("#cb-f-subject").fill(f"Is the store open? ({nickname})")
    held.faults(outage=True)
    try:
        widget.loc("#cb-f-nickname").press("Enter")
        expect(widget.loc(".cb-intro").first).to_have_text(
            "Our chat is unavailable right now. Leave us a message and we'll reply by e-mail."
        )
    finally:
        held.clear_faults()
    # What the customer wrote is kept; only the e-mail address is missing.
    expect(widget.loc("#cb-f-nickname")).to_have_value(nickname)
    expect(page.get_by_label("Your message")).to_have_value(f"Is the store open? ({nickname})")
    email = widget.loc("#cb-f-email")
    expect(email).to_be_focused()
    assert fields(widget) == ["nickname", "email", "subject", "order"]
    email.fill("olu@example.org")
    page.get_by_role("button", name="Send message").click()
    expect(widget.loc(".cb-thanks")).to_be_visible()

    (delivery,) = delivered(receiver, f"Is the store open? ({nickname})")
    assert delivery.json()["data"]["email"] == "olu@example.org"
    assert delivery.json()["data"]["nickname"] == nickname

    # Opened again while chat-bff still sees the contact center failing: a message at once.
    page.reload()
    expect(widget.loc(".cb-panel")).to_be_visible()
    expect(widget.loc(".cb-intro").first).to_have_text(
        "Our chat is unavailable right now. Leave us a message and we'll reply by e-mail."
    )
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    assert page.evaluate("document.activeElement === document.body")  # no focus taken on load
    assert widget.errors == []
