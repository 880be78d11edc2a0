"""The chat model of the simulated upstream: participants, the transcript, the chat state
machine, the hidden delivery cursor, and how all of it renders as upstream JSON.

Pure and synchronous: no asyncio, no HTTP, no clock other than timestamps passed in or read
for `utcTime`. It must not schedule anything; the emulator core drives the agent and timers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

WAITING_FOR_AGENT = "WaitingForAgent"
CHATTING = "Chatting"
IDLE = "Idle"

OPERATIONS = (
    "SendMessage",
    "SendStartTypingNotification",
    "SendStopTypingNotification",
    "Complete",
)
"""Every customer operation on an existing chat; listed as capabilities in every state."""

COOKIE_NAME = "EMUSESSION"


class UnknownChatError(LookupError):
    """No chat with that id."""


class ChatStateError(RuntimeError):
    """The operation is not valid in the chat's current state."""


@dataclass
class Participant:
    nickname: str
    participant_id: int
    type: str

    def render(self, numeric: bool) -> dict[str, Any]:
        pid: int | str = self.participant_id if numeric else str(self.participant_id)
        return {"nickname": self.nickname, "participantId": pid, "type": self.type}


@dataclass
class EmulatorMessage:
    """One entry of a chat's transcript as the emulated upstream holds it (rendered into the
    upstream's JSON on the way out); chat-bff's own is `app.models.TranscriptEntry`."""

    index: int
    type: str
    sender: Participant
    text: str | None = None
    utc_time_ms: int | None = None

    def render(self, numeric: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "from": self.sender.render(numeric),
        }
        if self.text is not None:
            out["text"] = self.text
        if self.type == "Text":
            out["visibility"] = "ALL"
        if self.utc_time_ms is not None:
            out["utcTime"] = self.utc_time_ms
        return out


@dataclass
class Chat:
    """One chat as the upstream holds it."""

    id: str
    customer: Participant
    agent: Participant
    external: Participant
    subject: str
    endpoint: str | None
    user_data: dict[str, str]
    cookie: str | None
    numeric_ids: bool
    timestamps: bool
    last_activity: float
    """time.monotonic() of the last upstream request for this chat (or of its creation)."""
    state: str = WAITING_FOR_AGENT
    transcript: list[EmulatorMessage] = field(default_factory=list)
    present: list[Participant] = field(default_factory=list)
    hidden_cursor: int = 0
    """Highest index already handed to index-less GetMessages callers (shared by all)."""
    agent_joined_ever: bool = False
    customer_completed: bool = False
    completed_while_waiting: bool = False
    customer_disconnected: bool = False
    cookie_seen_count: int = 0
    cookie_mismatch_count: int = 0
    cookie_missing_count: int = 0
    bot: Participant = field(default_factory=lambda: Participant("Assistant", 4, "External"))
    """A self-service bot in front of the queue: it speaks, never joins."""

    def __post_init__(self) -> None:
        if not self.transcript:  # a new chat: the customer has joined and waits for an agent
            self.present.append(self.customer)
            self.post("ParticipantJoined", self.customer)

    # -- transcript -------------------------------------------------------------------------

    def post(self, type_: str, sender: Participant, text: str | None = None) -> EmulatorMessage:
        stamp = int(time.time() * 1000) if self.timestamps else None
        message = EmulatorMessage(len(self.transcript) + 1, type_, sender, text, stamp)
        self.transcript.append(message)
        return message

    @property
    def last_index(self) -> int:
        return len(self.transcript)

    @property
    def customer_present(self) -> bool:
        return self.customer in self.present

    @property
    def agent_present(self) -> bool:
        return self.agent in self.present

    @property
    def live(self) -> bool:
        return self.state != IDLE

    @property
    def agent_active(self) -> bool:
        """The agent is in a live chat (and may type and talk)."""
        return self.live and self.agent_present

    # -- customer side ----------------------------------------------------------------------

    def customer_text(self, text: str) -> EmulatorMessage:
        return self.post("Text", self.customer, text)

    def customer_typing(self, started: bool) -> EmulatorMessage:
        return self.post("TypingStarted" if started else "TypingStopped", self.customer)

    def complete(self) -> EmulatorMessage:
        """The customer ends the chat (Complete)."""
        self.customer_completed = True
        self.completed_while_waiting = self.state == WAITING_FOR_AGENT
        return self._customer_leaves()

    def disconnect_customer(self) -> EmulatorMessage:
        """The platform drops a customer who stopped polling."""
        if not self.customer_present or not self.live:
            raise ChatStateError("the customer is not in a live chat")
        self.customer_disconnected = True
        return self._customer_leaves()

    def _customer_leaves(self) -> EmulatorMessage:
        self.present.remove(self.customer)
        self.state = IDLE
        return self.post("ParticipantLeft", self.customer)

    # -- agent side -------------------------------------------------------------------------

    @property
    def agent_can_join(self) -> bool:
        if self.agent_present:
            return False
        if self.live:
            return True
        # Documented misbehaviour: a Complete sent while waiting is undone by the join.
        return self.completed_while_waiting and not self.agent_joined_ever

    def agent_join(self) -> EmulatorMessage:
        if not self.agent_can_join:
            raise ChatStateError("the agent cannot join this chat now")
        self.agent_joined_ever = True
        self.present.insert(0, self.agent)
        self.state = CHATTING
        return self.post("ParticipantJoined", self.agent)

    def _require_agent(self, live: bool = True) -> None:
        if not self.agent_present:
            raise ChatStateError("the agent is not in this chat")
        if live and not self.live:
            raise ChatStateError("the chat is over")

    def agent_text(self, text: str) -> EmulatorMessage:
        self._require_agent()
        return self.post("Text", self.agent, text)

    def agent_typing(self, started: bool) -> EmulatorMessage:
        self._require_agent()
        return self.post("TypingStarted" if started else "TypingStopped", self.agent)

    def agent_leave(self) -> EmulatorMessage:
        self._require_agent(live=False)
        self.present.remove(self.agent)
        self.state = IDLE
        return self.post("ParticipantLeft", self.agent)

    def close_silently(self) -> int:
        """The chat becomes Idle with no transcript entry (some servers end chats from the
        supervisor's side that way). Returns the last index."""
        if not self.live:
            raise ChatStateError("the chat is over")
        if self.agent_present:
            self.present.remove(self.agent)
        self.state = IDLE
        return self.last_index

    def bot_text(self, text: str) -> EmulatorMessage:
        if not self.live:
            raise ChatStateError("the chat is over")
        return self.post("Text", self.bot, text)

    def notice(self, text: str) -> EmulatorMessage:
        return self.post("Notice", self.external, text)

    # -- reads ------------------------------------------------------------------------------

    def messages_from(self, index: int) -> list[EmulatorMessage]:
        """Messages with index >= `index` (the documented GetMessages?index=N)."""
        return self.transcript[max(index, 1) - 1 :]

    def take_unread(self) -> list[EmulatorMessage]:
        """Index-less GetMessages: what no index-less caller got yet; moves the shared cursor."""
        unread = self.transcript[self.hidden_cursor :]
        self.hidden_cursor = self.last_index
        return unread

    def note_cookies(self, values: list[str]) -> None:
        """Record whether a request for this chat brought its session cookie back."""
        if self.cookie is None:
            return
        if not values:
            self.cookie_missing_count += 1
        elif all(value == self.cookie for value in values):
            self.cookie_seen_count += 1
        else:
            self.cookie_mismatch_count += 1

    def render_chat(self) -> dict[str, Any]:
        return {
            "chat": {
                "id": self.id,
                "state": self.state,
                "capabilities": list(OPERATIONS),
                "participants": [p.render(self.numeric_ids) for p in self.present],
            },
            "statusCode": 0,
        }

    def render_messages(self, messages: list[EmulatorMessage]) -> dict[str, Any]:
        return {"messages": [m.render(self.numeric_ids) for m in messages], "statusCode": 0}

    def control_view(self, now: float, requests: int) -> dict[str, Any]:
        """Everything the emulator knows about the chat (control API)."""
        return {
            "id": self.id,
            "state": self.state,
            "nickname": self.customer.nickname,
            "subject": self.subject,
            "endpoint": self.endpoint,
            "userData": dict(self.user_data),
            "agent": self.agent.nickname,
            "participants": [p.render(self.numeric_ids) for p in self.present],
            "transcript": [m.render(self.numeric_ids) for m in self.transcript],
            "last_index": self.last_index,
            "hidden_cursor": self.hidden_cursor,
            "customer_present": self.customer_present,
            "agent_present": self.agent_present,
            "customer_completed": self.customer_completed,
            "completed_while_waiting": self.completed_while_waiting,
            "customer_disconnected": self.customer_disconnected,
            "idle_for_s": round(max(0.0, now - self.last_activity), 3),
            "requests": requests,
            "cookie": self.cookie,
            "cookie_seen_count": self.cookie_seen_count,
            "cookie_mismatch_count": self.cookie_mismatch_count,
            "cookie_missing_count": self.cookie_missing_count,
        }
