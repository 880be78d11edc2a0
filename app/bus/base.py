"""`Bus`: every role of the bus in one protocol, the one a backend (`MemoryBus`, `RedisBus`)
implements and `create_app()` wires.

Each role is its own protocol, with its guarantees, in the module of its group:

* `chats`: `Lease` (who polls a chat), `ChatCache` (the shared copy of a chat),
  `Interest` (who cares about a chat: interest and reader presence).
* `fanout`: `FanOut` and its `Subscription` (live events), `Pokes` (wake a chat's poller).
* `guards`: `Limits` (fleet-wide abuse limits), `IdempotencyStore` (requests made once).
* `hooks`: `Outbox` (webhook deliveries), `PushRecords` (per-chat push records).
* `fleet`: `FleetStats` (decayed histograms of reply and join times).

A user of the bus takes only the roles it needs (the poller: `Lease`, `ChatCache` and
`FanOut`), so its signature says what it may touch; only the runtime holds a whole `Bus`. The
values each role passes live beside it in its group's module. This module defines contracts
only and must not import a backend.
"""

from __future__ import annotations

from typing import Protocol

from app.bus.chats import ChatCache, Interest, Lease
from app.bus.fanout import FanOut, Pokes
from app.bus.fleet import FleetStats
from app.bus.guards import IdempotencyStore, Limits
from app.bus.hooks import Outbox, PushRecords

# The backends' defaults, each written once: `make_bus`, `MemoryBus` and `RedisBus` take them,
# and the settings that set them read them from here (app/config/parts.py).
KEY_PREFIX = "bff"  # BFF_REDIS_PREFIX: the start of every Redis key
RETENTION_S = 86_400.0  # BFF_CACHE_RETENTION_S: a chat's record after its last write
SUBSCRIBER_BUFFER = 256  # BFF_SSE_BUFFER_EVENTS: events queued per subscriber before a RESYNC
OP_TIMEOUT_S = 2.0  # BFF_REDIS_TIMEOUT_S: one Redis call
HOLDER_TTL_S = 15.0  # BFF_STREAM_COUNT_TTL_S: a dead instance's held counts stop counting
HISTORY_HALF_LIFE_S = 3600.0  # BFF_POLL_HISTORY_HALF_LIFE_S: the fleet's histograms halve


class Bus(
    Lease,
    ChatCache,
    Interest,
    FanOut,
    Pokes,
    Outbox,
    PushRecords,
    Limits,
    IdempotencyStore,
    FleetStats,
    Protocol,
):
    """All the roles, plus lifecycle and health."""

    async def ping(self) -> bool:
        """True when the bus answers now (Redis: every primary), within its op timeout."""
        ...

    async def aclose(self) -> None:
        """Stop the bus's background work and close its connections."""
        ...
