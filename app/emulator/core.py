"""The `Emulator`: the one owner of all simulated-upstream state (chats, request log, faults)
and of every background task it starts (scripted agents, idle watchdogs).

It offers the operations the HTTP surfaces call and the Python API tests use. It must not
speak HTTP itself (routes.py, gate.py and control.py do) and must not start anything at
construction: tasks are created lazily, inside the running event loop, when chats open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import string
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from app.emulator.agent import join_with_greeting, run_scripted_agent, watch_idle
from app.emulator.config import EmulatorConfig
from app.emulator.faults import Faults, FaultSwitch
from app.emulator.recording import RecordedRequest, RequestLog
from app.emulator.state import Chat, Participant, UnknownChatError

logger = logging.getLogger(__name__)

_SHORT_ID_ALPHABET = string.ascii_letters + string.digits


class Emulator:
    """A simulated Customer Chat API v2 upstream, with its scripted agents and fault switch."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.chats: dict[str, Chat] = {}
        self.log = RequestLog(self.config.log_limit)
        self.fault_switch = FaultSwitch()
        self._agent_tasks: dict[str, asyncio.Task[None]] = {}
        self._idle_tasks: dict[str, asyncio.Task[None]] = {}
        self._inboxes: dict[str, asyncio.Queue[str]] = {}
        self._hangs: set[asyncio.Future[None]] = set()
        self._agents_assigned = 0
        self._rng = random.Random(self.config.seed)

    # -- accounting and faults --------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Total upstream (/api/v2) requests received since creation or the last reset."""
        return self.log.count

    def requests(self, since: int = 0) -> list[RecordedRequest]:
        """The bounded request log, oldest first (only entries with seq > `since`)."""
        return self.log.entries(since)

    def stats(self) -> dict[str, Any]:
        return self.log.stats()

    def reset_stats(self) -> None:
        """Clear the counter, the tallies and the log (chats are kept)."""
        self.log.reset()

    @property
    def faults(self) -> Faults:
        """A copy of the faults in force."""
        return self.fault_switch.current

    def set_faults(self, faults: Faults) -> None:
        self.fault_switch.set(faults)

    def clear_faults(self) -> None:
        self.fault_switch.clear()

    # -- chats ------------------------------------------------------------------------------

    def chat(self, chat_id: str) -> Chat:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise UnknownChatError(chat_id) from None

    def view(self, chat_id: str) -> dict[str, Any]:
        """The full internal view of one chat (control API)."""
        chat = self.chat(chat_id)
        return chat.control_view(time.monotonic(), self.log.by_chat.get(chat_id, 0))

    def _new_chat_id(self) -> str:
        while True:
            if self.config.chat_id_style == "short":
                tail = "".join(secrets.choice(_SHORT_ID_ALPHABET) for _ in range(12))
                chat_id = "0000" + tail
            else:
                chat_id = str(uuid.uuid4())
            if chat_id not in self.chats:
                return chat_id

    def create_chat(
        self, nickname: str, subject: str, endpoint: str | None, user_data: dict[str, str]
    ) -> Chat:
        """RequestChat. Must run inside the event loop (it starts the chat's tasks)."""
        config = self.config
        agent_name = config.agent_names[self._agents_assigned % len(config.agent_names)]
        self._agents_assigned += 1
        chat = Chat(
            id=self._new_chat_id(),
            customer=Participant(nickname, 1, "Customer"),
            agent=Participant(agent_name, 2, "Agent"),
            external=Participant("System", 3, "External"),
            subject=subject,
            endpoint=endpoint,
            user_data=dict(user_data),
            cookie=secrets.token_urlsafe(18) if config.set_cookie else None,
            numeric_ids=config.numeric_participant_ids,
            timestamps=config.include_timestamps,
            last_activity=time.monotonic(),
        )
        self.chats[chat.id] = chat
        if config.scripted_agent:
            inbox: asyncio.Queue[str] = asyncio.Queue()
            self._inboxes[chat.id] = inbox
            # Each chat draws from its own generator, so a seed replays every chat's timings
            # whatever order the chats' steps interleave in.
            rng = random.Random(self._rng.getrandbits(64))
            pace = config.agent_pace
            script = run_scripted_agent(chat, pace, rng, inbox, lambda: self._ended(chat))
            self._agent_tasks[chat.id] = self._spawn(self._agent_tasks, chat.id, script)
        if config.idle_disconnect_s > 0:
            watchdog = watch_idle(chat, config.idle_disconnect_s, lambda: self._expire(chat))
            self._idle_tasks[chat.id] = self._spawn(self._idle_tasks, chat.id, watchdog)
        return chat

    def touch(self, chat: Chat) -> None:
        """A customer request for the chat arrived: check the idle timer, then restart it."""
        now = time.monotonic()
        idle_s = self.config.idle_disconnect_s
        if idle_s > 0 and now - chat.last_activity >= idle_s:
            self._expire(chat)
        chat.last_activity = now

    def customer_text(self, chat: Chat, text: str) -> int:
        index = chat.customer_text(text).index
        inbox = self._inboxes.get(chat.id)
        if inbox is not None and chat.id in self._agent_tasks:
            inbox.put_nowait(text)
        return index

    def complete(self, chat: Chat) -> int:
        index = chat.complete().index
        # Completed while waiting: the scripted agent still joins later (documented misbehaviour).
        self._ended(chat, keep_agent=chat.completed_while_waiting)
        return index

    # -- agent and platform actions (control API) -------------------------------------------

    async def agent_join(self, chat_id: str, greet: bool = False) -> int:
        """The agent joins now (greet: with the scripted notice and greeting). Returns index."""
        chat = self.chat(chat_id)
        if greet:
            return join_with_greeting(chat)
        return chat.agent_join().index

    async def agent_say(self, chat_id: str, text: str) -> int:
        """The agent posts a Text now, joining first if needed. Returns the new index."""
        chat = self.chat(chat_id)
        if not chat.agent_present:
            chat.agent_join()
        return chat.agent_text(text).index

    async def agent_typing(self, chat_id: str, typing: bool) -> int:
        """The agent starts or stops typing, joining first if needed. Returns the new index."""
        chat = self.chat(chat_id)
        if not chat.agent_present:
            chat.agent_join()
        return chat.agent_typing(typing).index

    async def agent_leave(self, chat_id: str) -> int:
        """The agent leaves; the chat becomes Idle. Returns the new index."""
        chat = self.chat(chat_id)
        index = chat.agent_leave().index
        self._ended(chat)
        return index

    async def close_silently(self, chat_id: str) -> int:
        """End the chat without a transcript entry. Returns the last index."""
        chat = self.chat(chat_id)
        index = chat.close_silently()
        self._ended(chat)
        return index

    async def disconnect_customer(self, chat_id: str) -> int:
        """Drop the customer now, as the idle timeout would. Returns the new index."""
        chat = self.chat(chat_id)
        index = chat.disconnect_customer().index
        self._ended(chat)
        return index

    # -- tasks ------------------------------------------------------------------------------

    def _expire(self, chat: Chat) -> None:
        if chat.live and chat.customer_present:
            chat.disconnect_customer()
            self._ended(chat)

    def _ended(self, chat: Chat, keep_agent: bool = False) -> None:
        """The chat ended: cancel its tasks (but never the one running this)."""
        current = asyncio.current_task()
        tasks = [self._idle_tasks.get(chat.id)]
        if not keep_agent:
            tasks.append(self._agent_tasks.get(chat.id))
        for task in tasks:
            if task is not None and task is not current:
                task.cancel()

    def _spawn(
        self,
        registry: dict[str, asyncio.Task[None]],
        chat_id: str,
        coro: Coroutine[Any, Any, None],
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"emulator:{chat_id}")

        def done(finished: asyncio.Task[None]) -> None:
            if registry.get(chat_id) is finished:
                del registry[chat_id]
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("emulator task failed", exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    def hang_future(self) -> asyncio.Future[None]:
        """A future that resolves when the emulator closes (ends `hang` faults)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hangs.add(future)
        future.add_done_callback(self._hangs.discard)
        return future

    async def aclose(self) -> None:
        """Cancel every task this emulator started and release hanging requests."""
        for future in list(self._hangs):
            if not future.done():
                future.set_result(None)
        tasks = [*self._agent_tasks.values(), *self._idle_tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._agent_tasks.clear()
        self._idle_tasks.clear()
