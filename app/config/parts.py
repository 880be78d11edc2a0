"""The service's settings, grouped by the part that reads them (the request edge's are in
`edge.py`, the hooks' in `hooks.py`); `settings.Settings` inherits every group, so each field
is a `BFF_*` variable named as before (no nesting).

Owns each group's fields, limits and checks, and where a default comes from: a component that
has a default of its own (a tuning dataclass, a constructor's constant) owns it, and its setting
reads it from there (`default_of`), so every default is written once. It must not be read by
anything but `main.py`, `build.py` and `cli.py`, like `settings.py`: other modules get plain
values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from app.bus import TranscriptLimits, parse_redis_url
from app.bus.base import (
    HISTORY_HALF_LIFE_S,
    HOLDER_TTL_S,
    KEY_PREFIX,
    OP_TIMEOUT_S,
    RETENTION_S,
    SUBSCRIBER_BUFFER,
)
from app.core.poller import PollerTuning
from app.core.registry import READER_WINDOW_S
from app.core.schedule import Budget
from app.core.sse import StreamTuning
from app.upstream import client


def default_of(cls: type, name: str) -> Any:
    """The default dataclass `cls` gives its field `name` (slotted dataclasses keep none on the
    class): the one place a setting's default is written is the component it tunes."""
    for field in dataclasses.fields(cls):
        if field.name == name and field.default is not dataclasses.MISSING:
            return field.default
    raise LookupError(f"{cls.__name__}.{name} has no default")


class UpstreamSettings(BaseSettings):
    """The contact center and the client's bounds: read by `upstream.client.UpstreamClient`."""

    upstream_url: AnyHttpUrl = Field(description="Base URL of the contact center, without /api/v2")
    contact_center_id: SecretStr = Field(description="Sent upstream as ContactCenterId")
    upstream_timeout_s: float = Field(default=client.TIMEOUT_S, gt=0, le=120)
    upstream_connect_timeout_s: float = Field(default=client.CONNECT_TIMEOUT_S, gt=0, le=60)
    upstream_max_connections: int = Field(default=client.MAX_CONNECTIONS, ge=1)
    upstream_max_in_flight: int = Field(
        default=client.MAX_IN_FLIGHT,
        ge=1,
        description="Concurrent upstream reads; writes get a quarter more",
    )
    upstream_max_body_bytes: int = Field(
        default=client.MAX_BODY_BYTES,
        ge=65_536,
        description="Largest upstream answer read; a larger one is refused (502 / degraded)",
    )

    @field_validator("contact_center_id")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class BusSettings(BaseSettings):
    """Redis (or the in-process bus) and what it keeps: read by `bus.make_bus`."""

    redis_url: str | None = Field(default=None, description="Unset: one process, in-memory bus")
    redis_prefix: str = KEY_PREFIX
    redis_timeout_s: float = Field(default=OP_TIMEOUT_S, gt=0, le=60)
    redis_failover_wait_s: float = Field(
        default=12.0,
        ge=0,
        le=120,
        description="How long a customer's request waits for Redis through a failover before "
        "503 (a Sentinel or Cluster failover of up to 10 s passes unnoticed)",
    )
    stream_count_ttl_s: float = Field(
        default=HOLDER_TTL_S,
        ge=1,
        le=600,
        description="Stream counts of an instance that died without closing them stop "
        "counting towards the per-IP and per-chat limits after this",
    )
    cache_retention_s: float = Field(default=RETENTION_S, gt=0)
    # -- bounded transcripts (issue 18): the upstream keeps them whole -------------------
    transcript_max_messages: int = Field(
        default=TranscriptLimits.max_messages,
        ge=10,
        description="Messages of one chat kept in the cache; older ones are read from the "
        "upstream when asked for",
    )
    transcript_max_bytes: int = Field(
        default=TranscriptLimits.max_bytes,
        ge=16_384,
        description="Bytes of message text of one chat kept in the cache (the oldest go first)",
    )
    transcript_budget_bytes: int = Field(
        default=TranscriptLimits.budget_bytes,
        ge=1 << 20,
        description="Bytes of message text cached for all chats: the process's (no Redis) or "
        "the fleet's; over it, the transcripts committed to least recently are dropped",
    )
    ended_retention_s: float = Field(
        default=TranscriptLimits.ended_retention_s,
        gt=0,
        description="An ended chat's cached messages are dropped this long after its end "
        "(never later than BFF_CACHE_RETENTION_S); its state stays for the retention",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        schemes = (
            "redis://",
            "rediss://",
            "unix://",
            "redis+sentinel://",
            "rediss+sentinel://",
            "redis+cluster://",
            "rediss+cluster://",
        )
        if not value.startswith(schemes):
            raise ValueError("must start with one of " + ", ".join(schemes))
        parse_redis_url(value)  # options, hosts, paths: a bad URL stops the start
        return value

    @model_validator(mode="after")
    def _transcript_bounds(self) -> BusSettings:
        if self.transcript_budget_bytes < self.transcript_max_bytes:
            raise ValueError("transcript_budget_bytes must be at least transcript_max_bytes")
        return self


class PollSettings(BaseSettings):
    """When chats are polled and for how long: read by the registry, the pollers and their
    schedule (`schedule.Budget`, `poller.PollerTuning`, `registry.Keepalive`)."""

    # Polls go where something is likely to arrive (app/core/schedule.py, docs/scheduling.md),
    # within a read budget: a client polling state and messages every 3 s makes 40 reads a
    # minute; chat-bff spends at most BFF_POLL_READ_BUDGET per watched chat.
    poll_read_budget: float = Field(
        default=default_of(Budget, "reads_per_min"),
        gt=0,
        description="Upstream reads per chat-minute at most while someone watches the chat; "
        "the schedule spends them where replies are likely",
    )
    poll_floor_s: float = Field(
        default=default_of(Budget, "floor_s"), gt=0, description="Shortest gap between polls"
    )
    poll_ceiling_s: float = Field(
        default=default_of(Budget, "ceiling_s"),
        gt=0,
        description="Longest gap between polls while someone watches",
    )
    poll_history_half_life_s: float = Field(
        default=HISTORY_HALF_LIFE_S,
        gt=0,
        description="The fleet's histograms of reply and join times halve their weight this "
        "often (they follow the time of day)",
    )
    poll_keepalive_s: float = Field(
        default=default_of(Budget, "keepalive_s"),
        gt=0,
        le=30,
        description="Max gap between polls of a live chat; the cadence with no reader present",
    )
    poll_backoff_max_s: float = Field(default=default_of(Budget, "backoff_max_s"), gt=0)
    lease_ttl_s: float = Field(default=default_of(PollerTuning, "lease_ttl_s"), gt=0)
    background_keepalive_s: float = Field(
        default=600.0,
        gt=0,
        description="Polling (at the keep-alive cadence) goes on this long after the last "
        "read (stream, long-poll, read) of a chat, or its RequestChat with a pushToken, so an "
        "app in the background keeps its chat upstream",
    )
    unread_keepalive_s: float = Field(
        default=30.0,
        gt=0,
        description="A chat nobody has read (no stream, long-poll or read) is polled this long "
        "after its creation or last send, and then left to the upstream's idle disconnect "
        "(45 s); never longer than BFF_BACKGROUND_KEEPALIVE_S",
    )
    keepalive_chats_per_client: int = Field(
        default=20,
        ge=1,
        description="Chats one client (key) may keep alive in the background at a time; "
        "beyond it a read chat gets only BFF_UNREAD_KEEPALIVE_S",
    )
    reader_window_s: float = Field(
        default=READER_WINDOW_S,
        gt=0,
        description="A read counts as a present reader this long (streams and long-polls "
        "count while open)",
    )
    state_refresh_s: float = Field(
        default=default_of(PollerTuning, "state_refresh_s"),
        gt=0,
        description="Periodic chat-state read of a quiet chat (lively chats get theirs from "
        "participant events)",
    )

    @model_validator(mode="after")
    def _poll_bounds(self) -> PollSettings:
        if not self.poll_floor_s <= self.poll_ceiling_s <= self.poll_keepalive_s:
            raise ValueError("need poll_floor_s <= poll_ceiling_s <= poll_keepalive_s")
        return self


class StreamSettings(BaseSettings):
    """Held connections: read by `sse` (`StreamTuning`), `admission` and the long-poll."""

    sse_heartbeat_s: float = Field(default=default_of(StreamTuning, "heartbeat_s"), gt=0, le=15)
    sse_retry_ms: int = Field(default=default_of(StreamTuning, "retry_ms"), ge=100)
    sse_send_timeout_s: float = Field(default=default_of(StreamTuning, "send_timeout_s"), gt=0)
    sse_buffer_events: int = Field(default=SUBSCRIBER_BUFFER, ge=8)
    long_poll_max_s: float = Field(default=30.0, gt=0, le=60)
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    max_streams: int = Field(
        default=10_000,
        ge=1,
        description="Open SSE streams per process; beyond it 503 + Retry-After (about 30 KiB "
        "of memory each)",
    )
    max_streams_per_ip: int = Field(
        default=50, ge=1, description="Open SSE streams plus waiting long-polls, per client IP"
    )
    max_streams_per_chat: int = Field(default=20, ge=1)


class ClientLimitSettings(BaseSettings):
    """Rates per client, counted fleet-wide: read by `limits.RateLimiter`s."""

    chat_create_per_minute: float = Field(default=10, gt=0, description="Per client IP")
    chat_create_burst: int = Field(default=5, ge=1)
    send_per_minute: float = Field(default=120, gt=0, description="Per client IP")
    send_burst: int = Field(default=30, ge=1)
    history_per_minute: float = Field(
        default=30,
        gt=0,
        description="Reads of messages no longer cached (served from the upstream), per client",
    )
    history_burst: int = Field(default=10, ge=1)
