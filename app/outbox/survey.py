"""Post-chat surveys: a customer's rating of a chat that has ended, handed to the operator.

Owns taking a survey (what one may say is `app.api.bodies.SurveyBody`: a rating from 1 to 5
and an optional comment of at most `COMMENT_MAX` characters): when one is taken (the chat is
over for the customer: ended in the shared cache, or completed by them), the one-per-chat rule
for the whole fleet, and what the operator is sent (`survey_data`: the handle, the answer, the
agents' nicknames, the chat's start and end, its message counts; never an upstream id nor what
anyone wrote in the chat). The survey is put durably into the webhook outbox and delivered by
`webhooks.Dispatcher` to `BFF_SURVEY_WEBHOOK_URL`. It must not call the upstream or deliver,
and never logs a comment.

One per chat: the outbox item's id is derived from the chat (`survey:<chat key>`), and the
outbox stores an id once, fleet-wide and atomically, and remembers it after delivery (for
`BFF_CACHE_RETENTION_S`, at most the kind's item quota of ids): a second survey for the chat
finds it and is refused. Nothing else is held per survey.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from app.api.bodies import SurveyBody
from app.bus.chats import ChatCache, ChatRecord
from app.errors import InvalidStateError, NotConfiguredError
from app.models import ChatRef, ChatState, TranscriptEntry
from app.outbox.signing import utc_iso
from app.outbox.webhooks import Dispatcher, envelope
from app.upstream.transcript import ENDED_STATES

KIND = "survey"
EVENT_TYPE = "chat.survey"
NICKNAMES_MAX = 10
NICKNAME_CHARS_MAX = 64
# Transcript entries read to count messages (the cache's pages are 1,000 long).
ENTRIES_MAX = 20_000


def chat_over(record: ChatRecord) -> bool:
    """Over for the customer: the cache saw its end, or they completed it (the cache may not
    have seen the end yet: a customer who pressed End is asked at once)."""
    idle = record.state is not None and record.state.state in ENDED_STATES
    return record.ended or record.completed or idle


def _time(entry: dict[str, Any]) -> float | None:
    value = entry.get("utcTime")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000
    return seconds if 0 < seconds < 253_402_300_800 else None  # before year 10000


def survey_data(
    handle: str,
    body: SurveyBody,
    state: ChatState | None,
    messages: Sequence[TranscriptEntry],
    *,
    ended: bool,
    now: float,
) -> dict[str, Any]:
    """What the operator is sent about a survey (pure). `ended`: the cache saw the chat's end
    (else the customer completed it and its last entries may still be on their way: the end is
    the survey's time)."""
    agents: list[str] = []
    counts = {"customer": 0, "agent": 0, "other": 0}
    times: list[float] = []
    parties = [m.body.get("from") for m in messages]
    parties += list(state.participants) if state is not None else []
    for party in parties:
        if isinstance(party, dict) and party.get("type") == "Agent":
            name = str(party.get("nickname") or "")[:NICKNAME_CHARS_MAX]
            if name and name not in agents and len(agents) < NICKNAMES_MAX:
                agents.append(name)
    for message in messages:
        entry = message.body
        stamp = _time(entry)
        if stamp is not None:
            times.append(stamp)
        if entry.get("type") != "Text":
            continue
        party = entry.get("from")
        kind = party.get("type") if isinstance(party, dict) else None
        counts[{"Customer": "customer", "Agent": "agent"}.get(str(kind), "other")] += 1
    end: float | None = max(times, default=None) if ended else now
    return {
        "chat": handle,
        "rating": body.rating,
        "comment": body.comment or None,
        "agents": agents,
        "startedAt": utc_iso(min(times)) if times else None,
        "endedAt": None if end is None else utc_iso(end),
        "messages": counts,
    }


class SurveyDesk:
    """Takes surveys: checks the chat is over and enqueues its one survey."""

    def __init__(
        self, *, bus: ChatCache, dispatcher: Dispatcher, registry: CollectorRegistry
    ) -> None:
        self._bus = bus
        self._dispatcher = dispatcher
        self.outcomes = Counter(
            "bff_surveys",
            "Survey requests by outcome: accepted (enqueued), duplicate (the chat has one), "
            "live (the chat is not over), unavailable (not configured, bus or outbox trouble)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("accepted", "duplicate", "live", "unavailable"):
            self.outcomes.labels(outcome)

    async def take(self, ref: ChatRef, body: SurveyBody) -> None:
        """Enqueued durably when this returns. 409 when the chat is live or has its survey;
        503 when surveys are not configured or the bus is unavailable; 507 when the survey
        outbox holds its quota."""
        if not self._dispatcher.accepts(KIND):
            self.outcomes.labels("unavailable").inc()
            raise NotConfiguredError("Surveys are not available")
        record = await self._bus.record(ref.key)
        if not chat_over(record):
            self.outcomes.labels("live").inc()
            raise InvalidStateError("The chat has not ended")
        seen_end = record.ended or (record.state is not None and record.state.state in ENDED_STATES)
        try:
            messages = await self._transcript(ref.key)
            data = survey_data(
                ref.handle, body, record.state, messages, ended=seen_end, now=time.time()
            )
            stored = await self._dispatcher.enqueue(
                f"{KIND}:{ref.key}", envelope(KIND, EVENT_TYPE, data)
            )
        except Exception:
            self.outcomes.labels("unavailable").inc()
            raise
        if not stored:
            self.outcomes.labels("duplicate").inc()
            raise InvalidStateError("This chat has its survey already")
        self.outcomes.labels("accepted").inc()

    async def _transcript(self, chat: str) -> list[TranscriptEntry]:
        found: list[TranscriptEntry] = []
        after = 0
        while len(found) < ENTRIES_MAX:
            page = await self._bus.messages(chat, after=after)
            if not page:
                break
            found += page
            after = page[-1].index
        return found
