"""The post-chat survey, opt-in with `data-survey`: the ended view of a chat an agent took part
in asks for a rating from 1 to 5 (a radio group, each choice named in words) and an optional
comment; the answer reaches the operator's webhook once, signed, across a lost answer (the
customer's retry reuses its Idempotency-Key) and a failed delivery (chat-bff's retry). Clean
for axe-core; asked once per chat; fetched (survey.js) only by pages that turn it on."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff
from tests.browser.chromium import WIDGET_BFF
from tests.browser.pages import Pages
from tests.browser.widget import Widget, audit, unique, upstream_chat_id
from tests.webhook_receiver import Delivery, Receiver

pytestmark = pytest.mark.browser

SCALE = ["1 Very poor", "2 Poor", "3 Okay", "4 Good", "5 Excellent"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def survey_bff(held_emulator: ServerProcess, receiver: Receiver) -> Iterator[ServerProcess]:
    server = start_bff(
        held_emulator.url,
        BFF_ALLOWED_ORIGINS="*",
        BFF_SURVEY_WEBHOOK_URL=receiver.url,
        BFF_SURVEY_WEBHOOK_SECRET=receiver.secret,
        BFF_WEBHOOK_RETRY_MIN_S="0.2",
        BFF_WEBHOOK_RETRY_MAX_S="1.0",
        **WIDGET_BFF,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[Pages]:
    with Pages() as pages:
        yield pages


def handle_of(page: Page, bff: ServerProcess) -> str:
    handle: str = page.evaluate("key => sessionStorage.getItem(key)", f"chat-bff|{bff.url}|h")
    return handle


def surveys_of(receiver: Receiver, handle: str) -> list[Delivery]:
    return [d for d in receiver.all() if d.json()["data"].get("chat") == handle]


def test_rated_by_keyboard_with_a_comment_and_delivered_once(
    context: BrowserContext,
    survey_bff: ServerProcess,
    site: Pages,
    held: EmulatorControl,
    receiver: Receiver,
) -> None:
    page = context.new_page()
    posts: list[tuple[str | None, str | None]] = []  # (key, Idempotent-Replayed) per try

    def lose_the_first_answer(route: Route) -> None:
        answer = route.fetch()  # chat-bff takes the survey...
        posts.append(
            (
                route.request.headers.get("idempotency-key"),
                answer.headers.get("idempotent-replayed"),
            )
        )
        if len(posts) == 1:
            route.abort("connectionreset")  # ... and its answer is lost on the way back
        else:
            route.fulfill(response=answer)

    page.route("**/survey", lose_the_first_answer)
    widget = Widget(page)
    page.goto(site.url + "/?" + urlencode({"server": survey_bff.url, "survey": ""}))
    nickname = unique("Yara")
    widget.start(nickname, "A gift voucher")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    agent = str(held.chat(chat_id)["agent"])
    held.agent_say(chat_id, "Vouchers come by e-mail within the hour.")
    widget.send("Perfect, thanks")
    widget.expect_text("Perfect, thanks")
    handle = handle_of(page, survey_bff)
    widget.end_chat()

    group = page.get_by_role("group", name="How was your chat?")
    expect(group).to_be_visible()
    radios = group.get_by_role("radio")
    expect(radios).to_have_count(5)
    for n, name in enumerate(SCALE):
        expect(radios.nth(n)).to_have_accessible_name(name)
    audit(page, "survey")

    # By keyboard: the group is one stop, its arrows choose, Tab goes on to the comment.
    group.get_by_role("radio", name=SCALE[0]).focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(group.get_by_role("radio", name=SCALE[3])).to_be_checked()
    page.keyboard.press("Tab")
    comment = page.get_by_label("Anything you'd like to add?")
    expect(comment).to_be_focused()
    page.keyboard.type("Quick and kind")
    receiver.answers[:] = [500]  # the operator's backend fails once: chat-bff tries again
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".cb-survey .cb-error")).to_have_text(
        "Something went wrong. Please try again."
    )
    page.get_by_role("button", name="Send", exact=True).click()  # the customer tries again
    thanks = widget.loc(".cb-rated")
    expect(thanks).to_have_text("Thank you for your feedback.")
    expect(group).to_have_count(0)
    audit(page, "survey sent")

    assert len(posts) == 2 and posts[0][0] and posts[0][0] == posts[1][0]
    assert posts[0][1] is None and posts[1][1] == "true"
    receiver.wait_for(lambda _: any(d.status == 200 for d in surveys_of(receiver, handle)))
    page.wait_for_timeout(1500)
    tries = surveys_of(receiver, handle)
    assert [d.status for d in tries] == [500, 200]
    assert len({d.msg_id for d in tries}) == 1 and tries[-1].verified
    data = tries[-1].json()["data"]
    assert (data["rating"], data["comment"], data["agents"]) == (4, "Quick and kind", [agent])

    # Asked once: a reload shows the ended chat without it.
    page.reload()
    widget.open()
    expect(widget.loc(".cb-ended")).to_be_visible()
    expect(page.get_by_role("group", name="How was your chat?")).to_have_count(0)
    assert widget.errors == []


def test_not_asked_without_an_agent_nor_on_pages_without_the_attribute(
    context: BrowserContext, survey_bff: ServerProcess, site: Pages, held: EmulatorControl
) -> None:
    widget = Widget(context.new_page())
    widget.page.goto(site.url + "/?" + urlencode({"server": survey_bff.url, "survey": ""}))
    nickname = unique("Zoe")
    widget.start(nickname, "Nobody came")
    held.http.post(f"/chats/{upstream_chat_id(held, nickname)}/disconnect").raise_for_status()
    expect(widget.loc(".cb-ended")).to_have_text(
        "Sorry, no one from our team could take your chat this time."
    )
    assert any(url.endswith("/static/survey.js") for url in widget.requests)
    expect(widget.loc(".cb-survey")).to_have_count(0)

    # The shop's demo page does not ask for surveys: it never fetches the part.
    other = Widget(context.new_page())
    other.page.goto(survey_bff.url + "/")
    nickname = unique("Abe")
    other.start(nickname, "No survey here")
    chat_id = upstream_chat_id(held, nickname)
    held.http.post(f"/chats/{chat_id}/agent/join", json={"greet": True}).raise_for_status()
    other.expect_text(
        f"Hello {nickname}, my name is {held.chat(chat_id)['agent']}. How can I help you?"
    )
    other.end_chat()
    expect(other.loc(".cb-survey")).to_have_count(0)
    assert not [
        url
        for url in other.requests
        if url.endswith(".js") and "widget.js" not in url and "demo.js" not in url
    ]
    assert widget.errors == other.errors == []
