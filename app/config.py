"""Settings: every knob of the service, read once from `BFF_*` environment variables.

Owns parsing and checking configuration at startup. It must not be imported for its values by
anything but `main.py` and `cli.py`: other modules receive plain values in their constructors.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.bus import TranscriptLimits, parse_redis_url
from app.config_hooks import HookSettings
from app.security import IPV6_PREFIX_LEN

MIN_SECRET_KEY_CHARS = 32

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(HookSettings, BaseSettings):
    """All configuration. Durations are seconds (`_s`), sizes bytes or characters. The push
    hook's, business hours' and leave-a-message's settings are in `config_hooks`."""

    model_config = SettingsConfigDict(env_prefix="BFF_", extra="ignore", frozen=True)

    upstream_url: AnyHttpUrl = Field(description="Base URL of the contact center, without /api/v2")
    contact_center_id: SecretStr = Field(description="Sent upstream as ContactCenterId")
    secret_key: SecretStr = Field(
        description="Seals chat handles. Comma-separated: the first seals, all open (rotation)."
    )
    redis_url: str | None = Field(default=None, description="Unset: one process, in-memory bus")
    redis_prefix: str = "bff"
    allowed_origins: CommaList = Field(default_factory=list)
    trusted_proxies: CommaList = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed"
    )
    ipv6_prefix_len: int = Field(
        default=IPV6_PREFIX_LEN,
        ge=32,
        le=128,
        description="IPv6 clients are one client per network of this many bits, for every "
        "per-client limit (IPv4: per address)",
    )

    upstream_timeout_s: float = Field(default=10.0, gt=0, le=120)
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    upstream_max_connections: int = Field(default=40, ge=1)
    upstream_max_in_flight: int = Field(
        default=32, ge=1, description="Concurrent upstream reads; writes get a quarter more"
    )
    redis_timeout_s: float = Field(default=2.0, gt=0, le=60)

    max_body_bytes: int = Field(default=32_768, ge=1024)
    demo_page: bool = Field(
        default=False,
        description="Serve the demo shop page at / (chat-bff demo does); off: / answers JSON",
    )

    chat_create_per_minute: float = Field(default=10, gt=0, description="Per client IP")
    chat_create_burst: int = Field(default=5, ge=1)
    send_per_minute: float = Field(default=120, gt=0, description="Per client IP")
    send_burst: int = Field(default=30, ge=1)
    max_streams_per_ip: int = Field(
        default=50, ge=1, description="Open SSE streams plus waiting long-polls, per client IP"
    )
    max_streams_per_chat: int = Field(default=20, ge=1)

    # Polls go where something is likely to arrive (app/schedule.py, docs/scheduling.md),
    # within a read budget: a client polling state and messages every 3 s makes 40 reads a
    # minute; chat-bff spends at most BFF_POLL_READ_BUDGET per watched chat.
    poll_read_budget: float = Field(
        default=28.0,
        gt=0,
        description="Upstream reads per chat-minute at most while someone watches the chat; "
        "the schedule spends them where replies are likely",
    )
    poll_floor_s: float = Field(default=0.5, gt=0, description="Shortest gap between polls")
    poll_ceiling_s: float = Field(
        default=8.0, gt=0, description="Longest gap between polls while someone watches"
    )
    poll_history_half_life_s: float = Field(
        default=3600.0,
        gt=0,
        description="The fleet's histograms of reply and join times halve their weight this "
        "often (they follow the time of day)",
    )
    poll_keepalive_s: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="Max gap between polls of a live chat; the cadence with no reader present",
    )
    poll_backoff_max_s: float = Field(default=30.0, gt=0)
    lease_ttl_s: float = Field(default=3.0, gt=0)
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
        default=30.0,
        gt=0,
        description="A read counts as a present reader this long (streams and long-polls "
        "count while open)",
    )
    state_refresh_s: float = Field(
        default=30.0,
        gt=0,
        description="Periodic chat-state read of a quiet chat (lively chats get theirs from "
        "participant events)",
    )
    cache_retention_s: float = Field(default=86_400.0, gt=0)
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
    history_per_minute: float = Field(
        default=30,
        gt=0,
        description="Reads of messages no longer cached (served from the upstream), per client",
    )
    history_burst: int = Field(default=10, ge=1)

    sse_heartbeat_s: float = Field(default=15.0, gt=0, le=15)
    sse_retry_ms: int = Field(default=2_000, ge=100)
    sse_send_timeout_s: float = Field(default=10.0, gt=0)
    sse_buffer_events: int = Field(default=256, ge=8)
    long_poll_max_s: float = Field(default=30.0, gt=0, le=60)
    shutdown_grace_s: float = Field(default=5.0, ge=0)

    # -- operations: logs and load shedding ----------------------------------------------
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: for a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_streams: int = Field(
        default=10_000,
        ge=1,
        description="Open SSE streams per process; beyond it 503 + Retry-After (about 30 KiB "
        "of memory each)",
    )

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    # -- hardening (issue 11) -------------------------------------------------------------
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A request's line and headers, and then its body, must each arrive "
        "within this; else 408 (or the connection is dropped mid-body)",
    )
    max_header_bytes: int = Field(
        default=32_768, ge=4096, description="Request line plus headers; larger gets 431"
    )
    idempotency_window_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86_400,
        description="How long the answer to a POST with an Idempotency-Key is replayed",
    )
    # -- the request edge (issue 18): idempotency bounds, the internal port ------------
    idempotency_error_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a final refusal (400, 404 once a route passed its limits) to a "
        "POST with an Idempotency-Key is replayed; successes: idempotency_window_s",
    )
    idempotency_max_per_client: int = Field(
        default=2_000,
        ge=1,
        description="Idempotency-Key entries one client (as the per-IP limits key it) may "
        "hold; a new key beyond it is 429 with Retry-After",
    )
    idempotency_max_entries: int = Field(
        default=100_000,
        ge=1,
        description="Idempotency-Key answers held per process (memory bus) or fleet (Redis); "
        "beyond it a new key is 429 with Retry-After, but for clients under the floor",
    )
    idempotency_floor_per_client: int = Field(
        default=64,
        ge=0,
        description="While idempotency_max_entries answers are held, a client holding fewer "
        "entries than this is served without its answer kept (not refused)",
    )
    internal_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="chat-bff serve also listens here for /healthz, /readyz and /metrics "
        "only; when set, /metrics is no longer served on the public port",
    )
    upstream_max_body_bytes: int = Field(
        default=4 << 20,
        ge=65_536,
        description="Largest upstream answer read; a larger one is refused (502 / degraded)",
    )

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"origin {origin!r} must start with http:// or https://")
        return [o.rstrip("/") for o in value]

    @field_validator("contact_center_id")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("secret_key")
    @classmethod
    def _keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("must not be empty")
        if any(len(k) < MIN_SECRET_KEY_CHARS for k in keys):
            raise ValueError(f"each key needs at least {MIN_SECRET_KEY_CHARS} characters")
        return value

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

    # -- Redis topologies and fleet-wide limits (issue 10) ---------------------------------
    redis_failover_wait_s: float = Field(
        default=12.0,
        ge=0,
        le=120,
        description="How long a customer's request waits for Redis through a failover before "
        "503 (a Sentinel or Cluster failover of up to 10 s passes unnoticed)",
    )
    stream_count_ttl_s: float = Field(
        default=15.0,
        ge=1,
        le=600,
        description="Stream counts of an instance that died without closing them stop "
        "counting towards the per-IP and per-chat limits after this",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Settings:
        if not self.poll_floor_s <= self.poll_ceiling_s <= self.poll_keepalive_s:
            raise ValueError("need poll_floor_s <= poll_ceiling_s <= poll_keepalive_s")
        if self.transcript_budget_bytes < self.transcript_max_bytes:
            raise ValueError("transcript_budget_bytes must be at least transcript_max_bytes")
        return self

    @property
    def secret_keys(self) -> list[bytes]:
        raw = self.secret_key.get_secret_value()
        return [k.strip().encode() for k in raw.split(",") if k.strip()]


def describe_error(error: ValidationError) -> str:
    """A startup message naming each bad variable, never echoing a value (it may be a secret)."""
    lines = ["invalid configuration:"]
    for item in error.errors():
        name = "BFF_" + "_".join(str(p) for p in item["loc"]).upper() if item["loc"] else "BFF_*"
        message = item["msg"]
        if item["type"] == "missing":
            message = "is required but not set"
        lines.append(f"  {name}: {message}")
    return "\n".join(lines)


# -- strict environment: unknown BFF_* names, secrets from files ---------------------------

PREFIX = "BFF_"
# Not a setting but where the others may come from: a directory of files named like the
# variables (a mounted Kubernetes Secret), read after the environment.
SECRETS_DIR_VARIABLE = "BFF_SECRETS_DIR"


class UnknownSettingError(ValueError):
    """A `BFF_*` name that is no setting: a typo would otherwise leave a default in force."""


def known_variables() -> frozenset[str]:
    """Every accepted name, from the Settings model itself (fields added later count)."""
    names = {PREFIX + name.upper() for name in Settings.model_fields}
    return frozenset(names | {SECRETS_DIR_VARIABLE})


# The poll intervals of old, replaced by one read budget (app/schedule.py).
RETIRED = frozenset(
    PREFIX + name
    for name in (
        "POLL_INTERVAL_S",
        "POLL_FAST_INTERVAL_S",
        "POLL_IDLE_INTERVAL_S",
        "POLL_LIVELY_WINDOW_S",
        "POLL_AGENT_TYPING_MAX_S",
        "POLL_AWAITING_REPLY_MAX_S",
    )
)


def retired_variables(names: Iterable[str]) -> list[str]:
    """Each retired poll setting in `names`, pointing to what replaced it."""
    return [
        f"{name} is retired: polls follow one read budget, BFF_POLL_READ_BUDGET (reads per "
        "chat-minute; with BFF_POLL_FLOOR_S and BFF_POLL_CEILING_S bounding the gaps)"
        for name in sorted(names)
        if name.upper() in RETIRED
    ]


def unknown_variables(names: Iterable[str]) -> list[str]:
    """Each unknown `BFF_*` name in `names`, with the closest known one when there is one."""
    known = known_variables()
    found = []
    for name in sorted(names):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or upper in RETIRED:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a setting{hint}")
    return found


def load_settings(**fixed: Any) -> Settings:
    """Settings from the environment (and `BFF_SECRETS_DIR`), refusing unknown `BFF_*` names;
    `fixed` values win over both (the demo fixes its upstream, secrets and bus).

    Raises UnknownSettingError or pydantic's ValidationError; `describe_problem` words both.
    """
    env = os.environ
    problems = retired_variables(env.keys()) + unknown_variables(env.keys())
    secrets_dir = env.get(SECRETS_DIR_VARIABLE) or None
    if secrets_dir is not None:
        folder = Path(secrets_dir)
        if not folder.is_dir():
            problems.append(f"{SECRETS_DIR_VARIABLE}: {secrets_dir} is not a directory")
        else:
            # Kubernetes adds dot-entries (..data, ..2024_...) next to the keys.
            files = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
            problems += [
                f"{p} (a file in {SECRETS_DIR_VARIABLE})"
                for p in retired_variables(files) + unknown_variables(files)
            ]
    if problems:
        raise UnknownSettingError("\n".join(problems))
    return Settings(_secrets_dir=secrets_dir, **fixed)


def describe_problem(error: Exception) -> str:
    """The startup message for any configuration problem, never echoing a value."""
    if isinstance(error, ValidationError):
        return describe_error(error)
    return "invalid configuration:\n" + "\n".join(f"  {line}" for line in str(error).splitlines())
