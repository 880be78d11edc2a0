"""The scripted agent and the idle-disconnect watchdog of one simulated chat.

Owns the timing and wording of the simulated agent (join, notice, greeting, typing, replies,
goodbye) and the idle timer. It acts on a `Chat` only; it must not create or cancel tasks
(the emulator core owns them) and must not touch HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.emulator.config import EmulatorConfig
from app.emulator.state import Chat

NOTICE = "Chat transcript will be sent by e-mail"
REPLIES = (
    "Thanks, let me check that for you.",
    "I see. Could you tell me a bit more about it?",
    "Done. Is there anything else I can help you with?",
)
GOODBYE = "Thank you for contacting us. Goodbye!"


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
    chat: Chat, config: EmulatorConfig, inbox: asyncio.Queue[str], on_leave: Callable[[], None]
) -> None:
    """Join after the configured delay, then answer every customer Text from `inbox`.

    Texts sent before the agent joined are answered after the greeting. A text containing
    "bye" gets a goodbye, and the agent leaves (`on_leave` is called after it left).
    """
    await asyncio.sleep(config.agent_join_delay_s)
    if chat.agent_can_join:
        join_with_greeting(chat)
    replies = 0
    while chat.agent_active:
        text = await inbox.get()
        await asyncio.sleep(config.agent_reply_delay_s)
        if not chat.agent_active:
            return
        chat.agent_typing(True)
        await asyncio.sleep(config.agent_typing_s)
        if not chat.agent_active:
            return
        if is_goodbye(text):
            chat.agent_text(GOODBYE)
            chat.agent_typing(False)
            chat.agent_leave()
            on_leave()
            return
        chat.agent_text(REPLIES[replies % len(REPLIES)])
        chat.agent_typing(False)
        replies += 1


async def watch_idle(chat: Chat, idle_s: float, on_expired: Callable[[], None]) -> None:
    """Call `on_expired` once the chat saw no request for `idle_s` while the customer is in."""
    while chat.live and chat.customer_present:
        remaining = chat.last_activity + idle_s - time.monotonic()
        if remaining <= 0:
            on_expired()
            return
        await asyncio.sleep(remaining)
