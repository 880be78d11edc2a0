"""The bus: what the instances serving chats share (leases, the chat cache, fan-out, limits,
the webhook outbox, ...), one protocol per role (`base` lists them).

`make_bus` picks the backend by the URL: none means the in-process `MemoryBus` (one
instance), a Redis URL (plain, Sentinel or Cluster: `redis_url`) the `RedisBus` a fleet
shares. Each backend is imported only when chosen (and so are `MemoryBus` and `RedisBus`
when named from here), so a process on the memory bus never loads the Redis client. What the
rest of the app needs from the bus is exported here or lives in a public module of it
(`base`, `chats`, `fanout`, `guards`, `hooks`, `fleet`, `redis_url`); the `_` modules are
the backends' own and are imported from inside `app/bus/` only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.bus.base import (
    HISTORY_HALF_LIFE_S,
    HOLDER_TTL_S,
    KEY_PREFIX,
    OP_TIMEOUT_S,
    RETENTION_S,
    SUBSCRIBER_BUFFER,
    Bus,
)
from app.bus.chats import ChatRecord, Fence, TranscriptLimits, TranscriptMeter
from app.bus.guards import Limits
from app.bus.redis_url import RedisTarget, parse_redis_url

if TYPE_CHECKING:
    from app.bus.memory import MemoryBus
    from app.bus.redis import RedisBus

__all__ = [
    "Bus",
    "ChatRecord",
    "Fence",
    "Limits",
    "MemoryBus",
    "RedisBus",
    "RedisTarget",
    "TranscriptLimits",
    "TranscriptMeter",
    "make_bus",
    "parse_redis_url",
]

# The backends, by the name each is exported under: imported on first use.
_BACKENDS = {"MemoryBus": "app.bus.memory", "RedisBus": "app.bus.redis"}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_bus(
    url: str | None,
    *,
    prefix: str = KEY_PREFIX,
    retention_s: float = RETENTION_S,
    subscriber_buffer: int = SUBSCRIBER_BUFFER,
    op_timeout_s: float = OP_TIMEOUT_S,
    failover_wait_s: float = 0.0,
    holder_ttl_s: float = HOLDER_TTL_S,
    on_error: Callable[[], None] | None = None,
    transcripts: TranscriptLimits | None = None,
    meter: TranscriptMeter | None = None,
    history_half_life_s: float = HISTORY_HALF_LIFE_S,
) -> Bus:
    """Build the bus for `url` (None: in-process). Nothing connects until first use."""
    if url is None:
        from app.bus.memory import MemoryBus

        return MemoryBus(
            retention_s=retention_s,
            subscriber_buffer=subscriber_buffer,
            transcripts=transcripts,
            meter=meter,
            history_half_life_s=history_half_life_s,
        )
    # Every bus URL is a Redis one: any other is refused here, with what is wrong with it,
    # before the Redis client is loaded.
    parse_redis_url(url)
    from app.bus.redis import RedisBus

    return RedisBus(
        url,
        prefix=prefix,
        retention_s=retention_s,
        subscriber_buffer=subscriber_buffer,
        op_timeout_s=op_timeout_s,
        failover_wait_s=failover_wait_s,
        holder_ttl_s=holder_ttl_s,
        on_error=on_error,
        transcripts=transcripts,
        meter=meter,
        history_half_life_s=history_half_life_s,
    )
