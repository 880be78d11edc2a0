"""The scripted agent and the idle-disconnect watchdog of one simulated chat.

Owns the wording of the simulated agent and its bot (bot line, join, notice, greeting, typing,
replies, canned lines, goodbye), acting them out at the times its pace draws (pacing.py), and
the idle timer. It acts on a `Chat` only; it must not create or cancel tasks (the emulator
core owns them) and must not touch HTTP.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from app.emulator.pacing import Pace, opening, reply
from app.emulator.state import Chat

NOTICE = "Chat transcript will be sent by e-mail"
REPLIES = (
    "Thanks, let me check that for you.",
    "I see. Could you tell me a bit more about it?",
    "Done. Is there anything else I can help you with?",
)
GOODBYE = "Thank you for contacting us. Goodbye!"
CANNED = (
    "You can follow your order at any time here: https://example.com/orders",
    "Our returns policy, for reference: https://example.com/returns",
)


def bot_line(nickname: str) -> str:
    return f"Thanks, {nickname}! An agent will be with you in a moment."


def greeting(chat: Chat) -> str:
    return f"Hello {chat.customer.nickname}, my name is {chat.agent.nickname}. How can I help you?"


def is_goodbye(text: str) -> bool:
    return "bye" in text.lower()


def join_with_greeting(chat: Chat) -> int:
    """The agent joins; the platform posts its notice; the agent greets. Returns last index."""
    chat.agent_join()
    chat.notice(NOTICE)
    return chat.agent_text(greeting(chat)).index


async def run_scripted_agent(
    chat: Chat,
    pace: Pace,
    rng: random.Random,
    inbox: asyncio.Queue[str],
    on_leave: Callable[[], None],
) -> None:
    """Join when the pace says (after its bot line, if it has one), then answer every customer
    Text from `inbox` with the pace's steps.

    Texts sent before the agent joined are answered after the greeting. A text containing
    "bye" gets a goodbye, and the agent leaves (`on_leave` is called after it left).
    """
    bot_at, join_at = opening(pace, rng)
    if bot_at is not None:
        await asyncio.sleep(bot_at)
        if chat.live and not chat.agent_present:
            chat.bot_text(bot_line(chat.customer.nickname))
        join_at -= bot_at
    await asyncio.sleep(join_at)
    if chat.agent_can_join:
        join_with_greeting(chat)
    replies = canned = 0
    while chat.agent_active:
        text = await inbox.get()
        if not chat.agent_active:
            return
        leaving = is_goodbye(text)
        answer = GOODBYE if leaving else REPLIES[replies % len(REPLIES)]
        waited = 0.0
        for step in reply(pace, rng, answer, canned=not leaving):
            # Steps at the same instant (the text and the end of its typing) happen at once:
            # no poll comes between them.
            if step.at > waited:
                await asyncio.sleep(step.at - waited)
                waited = step.at
                if not chat.agent_active:
                    return
            if step.action == "typing_on":
                chat.agent_typing(True)
            elif step.action == "say":
                chat.agent_text(answer)
            elif step.action == "typing_off":
                chat.agent_typing(False)
            else:
                chat.agent_text(CANNED[canned % len(CANNED)])
                canned += 1
        if leaving:
            chat.agent_leave()
            on_leave()
            return
        replies += 1


async def watch_idle(chat: Chat, idle_s: float, on_expired: Callable[[], None]) -> None:
    """Call `on_expired` once the chat saw no request for `idle_s` while the customer is in."""
    while chat.live and chat.customer_present:
        remaining = chat.last_activity + idle_s - time.monotonic()
        if remaining <= 0:
            on_expired()
            return
        await asyncio.sleep(remaining)
