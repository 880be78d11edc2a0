"""Availability and leave-a-message: whether customers can chat now, and what happens to a
message left when they cannot.

Owns the availability answer (business hours first, then the upstream's recent health as
this instance saw it, `upstream.health.UpstreamHealth.failing`: no upstream call of its own),
the check that refuses RequestChat while closed, and taking an offline message: validated as
`app.api.bodies.OfflineMessageBody`, put durably into the webhook outbox (delivered by
`webhooks.Dispatcher` to `BFF_OFFLINE_WEBHOOK_URL`). It must not deliver, and never logs what
a customer wrote.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

from app.api.answers import Availability
from app.api.bodies import OfflineMessageBody
from app.errors import InvalidStateError, NotConfiguredError
from app.outbox.hours import BusinessHours, is_open, next_open
from app.outbox.webhooks import Dispatcher, envelope
from app.upstream.health import UpstreamHealth

KIND = "offline"


def availability(hours: BusinessHours | None, instant: datetime, *, failing: bool) -> Availability:
    """Closed (business hours) wins over unavailable: it says when to come back."""
    if hours is not None and not is_open(hours, instant):
        upcoming = next_open(hours, instant)
        return Availability(
            open=False,
            reason="closed",
            nextOpen=None if upcoming is None else upcoming.isoformat(),
        )
    if failing:
        return Availability(open=False, reason="unavailable", nextOpen=None)
    return Availability(open=True, reason=None, nextOpen=None)


def item_id(body: OfflineMessageBody, idempotency_key: str | None) -> str | None:
    """The outbox id of a message sent with `Idempotency-Key` (as `idempotency_keys.parse_key`
    read it): the same key and body give the same id, so a retry is stored once however often
    it comes, even after the idempotency window. None without a key."""
    if not idempotency_key:
        return None
    canonical = json.dumps(
        [idempotency_key, body.model_dump(mode="json")], sort_keys=True, ensure_ascii=False
    )
    return f"{KIND}:{hashlib.sha256(canonical.encode()).hexdigest()}"


class OfflineDesk:
    def __init__(
        self,
        *,
        hours: BusinessHours | None,
        health: UpstreamHealth,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._hours = hours
        self._health = health
        self._dispatcher = dispatcher
        self._clock = clock

    def availability(self) -> Availability:
        return availability(self._hours, self._clock(), failing=self._health.failing())

    def require_open(self) -> None:
        """RequestChat's gate: 409 "closed" outside business hours, before anything upstream."""
        if self._hours is not None and not is_open(self._hours, self._clock()):
            raise InvalidStateError("closed")

    async def leave(self, body: OfflineMessageBody, idempotency_key: str | None) -> None:
        """Stored durably in the outbox when this returns; delivered from there."""
        if not self._dispatcher.accepts(KIND):
            raise NotConfiguredError("Leaving a message is not available")
        data = {
            "nickname": body.nickname,
            "email": str(body.email),
            "subject": body.subject,
            "text": body.text,
            "userData": dict(body.userData or {}),
        }
        notice = envelope(KIND, "offline.message", data)
        await self._dispatcher.enqueue(
            item_id(body, idempotency_key) or f"{KIND}:{notice.msg_id}", notice
        )
