"""The bus: lease, chat cache and fan-out shared by the instances serving chats.

`make_bus` picks the implementation: no URL means the in-process `MemoryBus` (one instance),
a Redis URL (plain, Sentinel or Cluster) the `RedisBus` a fleet shares.
"""

from __future__ import annotations

from collections.abc import Callable

from app.bus._connect import parse_redis_url
from app.bus.base import Bus, ChatRecord, Fence, Limits, TranscriptLimits, TranscriptMeter
from app.bus.memory import MemoryBus
from app.bus.redis import RedisBus

__all__ = [
    "Bus",
    "ChatRecord",
    "Fence",
    "Limits",
    "MemoryBus",
    "RedisBus",
    "TranscriptLimits",
    "TranscriptMeter",
    "make_bus",
    "parse_redis_url",
]


def make_bus(
    url: str | None,
    *,
    prefix: str = "bff",
    retention_s: float = 86400,
    subscriber_buffer: int = 256,
    op_timeout_s: float = 2.0,
    failover_wait_s: float = 0.0,
    holder_ttl_s: float = 15.0,
    on_error: Callable[[], None] | None = None,
    transcripts: TranscriptLimits | None = None,
    meter: TranscriptMeter | None = None,
    history_half_life_s: float = 3600.0,
) -> Bus:
    """Build the bus for `url` (None: in-process). Nothing connects until first use."""
    if url is None:
        return MemoryBus(
            retention_s=retention_s,
            subscriber_buffer=subscriber_buffer,
            transcripts=transcripts,
            meter=meter,
            history_half_life_s=history_half_life_s,
        )
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
