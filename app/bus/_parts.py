"""The roles a bus hands whole to parts of its own, forwarded: `Limits`, `Outbox`,
`IdempotencyStore` and `FleetStats`.

Both buses keep these roles in separate modules, one per role and backend (`_limits_memory`,
`_outbox_redis`, ...), each implementing its protocol under the protocol's own method names;
a bus sets the four attributes in its constructor and inherits the forwarding from here. It
owns nothing but the forwarding; it must not import a backend.
"""

from __future__ import annotations

from app.bus.fleet import FleetStats, HistogramKind, Histograms
from app.bus.guards import IdempotencyClaim, IdempotencyStore, Limits
from app.bus.hooks import Claim, ClaimBatch, Outbox, OutboxHeld, OutboxItem, OutboxQuota


class DelegatedRoles:
    """`Limits`, `Outbox`, `IdempotencyStore` and `FleetStats`, through the bus's parts."""

    _limits: Limits
    _outbox: Outbox
    _idempotency: IdempotencyStore
    _fleet: FleetStats

    # -- Limits ---------------------------------------------------------------------------

    async def take(self, name: str, key: str, per_minute: float, burst: int) -> float:
        return await self._limits.take(name, key, per_minute, burst)

    async def admit(self, name: str, key: str, member: str, ttl_s: float, limit: int) -> bool:
        return await self._limits.admit(name, key, member, ttl_s, limit)

    async def occupy(self, name: str, key: str, limit: int) -> bool:
        return await self._limits.occupy(name, key, limit)

    def vacate(self, name: str, key: str) -> None:
        self._limits.vacate(name, key)

    # -- Outbox ---------------------------------------------------------------------------

    async def outbox_put(self, item: OutboxItem, quota: OutboxQuota) -> bool:
        return await self._outbox.outbox_put(item, quota)

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch:
        return await self._outbox.outbox_claim(kind, limit, claim_s)

    async def outbox_done(self, claim: Claim, *, done_ttl_s: float, remember: int) -> bool:
        return await self._outbox.outbox_done(claim, done_ttl_s=done_ttl_s, remember=remember)

    async def outbox_retry(self, claim: Claim, delay_s: float) -> bool:
        return await self._outbox.outbox_retry(claim, delay_s)

    async def outbox_held(self, kind: str) -> OutboxHeld:
        return await self._outbox.outbox_held(kind)

    # -- IdempotencyStore -----------------------------------------------------------------

    async def idempotency_begin(
        self,
        client: str,
        key: str,
        fingerprint: str,
        *,
        in_flight_s: float,
        max_per_client: int,
        max_total: int,
        floor_per_client: int = 0,
    ) -> IdempotencyClaim:
        return await self._idempotency.idempotency_begin(
            client,
            key,
            fingerprint,
            in_flight_s=in_flight_s,
            max_per_client=max_per_client,
            max_total=max_total,
            floor_per_client=floor_per_client,
        )

    async def idempotency_finish(
        self, client: str, key: str, token: str, answer: str, keep_s: float
    ) -> bool:
        return await self._idempotency.idempotency_finish(client, key, token, answer, keep_s)

    async def idempotency_abandon(self, client: str, key: str, token: str) -> None:
        await self._idempotency.idempotency_abandon(client, key, token)

    async def idempotency_size(self) -> int:
        return await self._idempotency.idempotency_size()

    # -- FleetStats -----------------------------------------------------------------------

    async def observe(self, kind: HistogramKind, seconds: float) -> None:
        await self._fleet.observe(kind, seconds)

    async def snapshot(self) -> Histograms:
        return await self._fleet.snapshot()
