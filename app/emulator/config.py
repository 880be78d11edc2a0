"""Emulator configuration: the knobs of the simulated upstream and its scripted agent.

Owns only plain, immutable-by-convention settings. It must not hold state, start tasks or
import anything from the rest of the emulator but the pure pacing model.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.emulator.pacing import Pace, fixed

CHAT_ID_STYLES = ("uuid", "short")


@dataclass
class EmulatorConfig:
    """How the simulated upstream behaves (defaults: the documented platform, demo speed)."""

    contact_center_id: str | None = "demo-contact-center"
    """Required `ContactCenterId` header value; None accepts any value or none at all."""
    agent_join_delay_s: float = 2.0
    """The scripted agent joins this long after RequestChat (without a `pace`)."""
    agent_reply_delay_s: float = 1.0
    """The scripted agent starts typing this long after a customer Text (without a `pace`)."""
    agent_names: tuple[str, ...] = ("Kristi", "Sam", "Alex")
    """Agent nicknames, assigned round-robin to new chats."""
    idle_disconnect_s: float = 45.0
    """A customer is dropped after this long without a request for the chat (<= 0: never)."""
    numeric_participant_ids: bool = False
    """Field variation: `participantId` as an int instead of a string."""
    chat_id_style: str = "uuid"
    """"uuid" or "short" (server ids like 0000Wa9CAM6W00FN)."""
    include_timestamps: bool = True
    """Add `utcTime` (ms since the epoch) to messages; some servers do not."""
    scripted_agent: bool = True
    """False: the agent only acts through the control API."""
    set_cookie: bool = True
    """RequestChat answers with a per-chat `EMUSESSION` session cookie."""
    log_limit: int = 20000
    """Bound of the request log (oldest entries are dropped first)."""
    agent_typing_s: float = 0.5
    """How long the scripted agent types before its reply appears (without a `pace`)."""
    pace: Pace | None = None
    """The scripted agent's timing (app/emulator/pacing.py: FIXED, DEMO, MODEL). None: fixed
    at the three `agent_*` delays above, which by default is FIXED."""
    seed: int | None = None
    """Seeds the draws of a pace's ranges (None: different every run)."""

    def __post_init__(self) -> None:
        if self.chat_id_style not in CHAT_ID_STYLES:
            raise ValueError(f"chat_id_style must be one of {CHAT_ID_STYLES}")
        if not self.agent_names:
            raise ValueError("agent_names must not be empty")
        if self.log_limit < 1:
            raise ValueError("log_limit must be >= 1")
        for name in ("agent_join_delay_s", "agent_reply_delay_s", "agent_typing_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def agent_pace(self) -> Pace:
        """The pace the scripted agent follows."""
        if self.pace is not None:
            return self.pace
        return fixed(self.agent_join_delay_s, self.agent_reply_delay_s, self.agent_typing_s)
