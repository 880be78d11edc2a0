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
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import hours
from app.bus import parse_redis_url
from app.webhooks import parse_secret

MIN_SECRET_KEY_CHARS = 32

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All configuration. Durations are seconds (`_s`), sizes bytes or characters."""

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

    upstream_timeout_s: float = Field(default=10.0, gt=0, le=120)
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    upstream_max_connections: int = Field(default=40, ge=1)
    upstream_max_in_flight: int = Field(
        default=32, ge=1, description="Concurrent upstream reads; writes get a quarter more"
    )
    redis_timeout_s: float = Field(default=2.0, gt=0, le=60)

    max_body_bytes: int = Field(default=32_768, ge=1024)

    chat_create_per_minute: float = Field(default=10, gt=0, description="Per client IP")
    chat_create_burst: int = Field(default=5, ge=1)
    send_per_minute: float = Field(default=120, gt=0, description="Per client IP")
    send_burst: int = Field(default=30, ge=1)
    max_streams_per_ip: int = Field(
        default=50, ge=1, description="Open SSE streams plus waiting long-polls, per client IP"
    )
    max_streams_per_chat: int = Field(default=20, ge=1)

    # Polls go where a viewer waits for something (app/cadence.py). A conversation costs
    # about 17 upstream reads a minute at these values, against 40 for one browser tab
    # polling the upstream the documented way (state and messages every 3 s): the agent types
    # for about 15 % of it (fast polls), and the base interval is short enough to see most
    # typing notices (4 s or longer) before the reply they announce.
    poll_interval_s: float = Field(
        default=5.0, gt=0, description="Base cadence: a lively chat, a customer waiting"
    )
    poll_fast_interval_s: float = Field(
        default=1.5, gt=0, description="While an agent is typing (a reply is seconds away)"
    )
    poll_idle_interval_s: float = Field(default=8.0, gt=0, description="A quiet chat")
    poll_keepalive_s: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="Max gap between polls of a live chat; the cadence with no reader present",
    )
    poll_backoff_max_s: float = Field(default=30.0, gt=0)
    poll_lively_window_s: float = Field(
        default=20.0, gt=0, description="A chat is lively this long after its last new message"
    )
    poll_agent_typing_max_s: float = Field(
        default=30.0, ge=0, description="Fast polls for at most this long per typing notice"
    )
    poll_awaiting_reply_max_s: float = Field(
        default=120.0,
        ge=0,
        description="The base cadence for at most this long while a customer waits for an agent",
    )
    lease_ttl_s: float = Field(default=3.0, gt=0)
    background_keepalive_s: float = Field(
        default=600.0,
        gt=0,
        description="Polling (at the keep-alive cadence) goes on this long after the last "
        "reader, stream or send, so an app in the background keeps its chat upstream",
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

    # -- push hook, business hours, leave-a-message (hooks) ------------------------------
    push_webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description="Signed notices of agent messages and chat ends nobody was reading; unset: off",
    )
    push_webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_<base64 key>; comma-separated: all sign (rotation). Needed with the URL",
    )
    push_max_age_s: float = Field(
        default=3600.0, gt=0, description="A push notice not delivered by then is given up"
    )
    offline_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Signed deliveries of left messages; unset: leaving one is off"
    )
    offline_webhook_secret: SecretStr | None = Field(
        default=None, description="As push_webhook_secret; defaults to it"
    )
    survey_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Signed deliveries of post-chat surveys; unset: surveys are off"
    )
    survey_webhook_secret: SecretStr | None = Field(
        default=None,
        description="As push_webhook_secret, and needed with the URL: its own, no other's key",
    )
    business_hours: str | None = Field(
        default=None, description="Zone; weekly ranges; closed dates (app/hours.py). Unset: open"
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_retry_min_s: float = Field(default=1.0, gt=0)
    webhook_retry_max_s: float = Field(default=300.0, gt=0)
    webhook_outbox_max: int = Field(
        default=100_000, ge=10, description="Deliveries waiting at most, fleet-wide"
    )

    @field_validator("push_webhook_secret", "offline_webhook_secret", "survey_webhook_secret")
    @classmethod
    def _webhook_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            webhook_keys(value)
        return value

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        hours.parse(value)
        return value

    @model_validator(mode="after")
    def _webhooks(self) -> Settings:
        if self.push_webhook_url is not None and self.push_webhook_secret is None:
            raise ValueError("BFF_PUSH_WEBHOOK_URL needs BFF_PUSH_WEBHOOK_SECRET")
        if self.offline_webhook_url is not None and self.offline_secret is None:
            raise ValueError("BFF_OFFLINE_WEBHOOK_URL needs BFF_OFFLINE_WEBHOOK_SECRET")
        if self.survey_webhook_url is not None and self.survey_webhook_secret is None:
            raise ValueError(
                "BFF_SURVEY_WEBHOOK_URL needs BFF_SURVEY_WEBHOOK_SECRET (its own secret: "
                "the others do not sign surveys)"
            )
        survey = self.survey_webhook_secret
        others = (self.push_webhook_secret, self.offline_webhook_secret)
        if survey is not None and any(o is not None and _share_a_key(survey, o) for o in others):
            raise ValueError(
                "BFF_SURVEY_WEBHOOK_SECRET must not share a key with the push or offline "
                "webhook secrets: either receiver could sign the other's notices"
            )
        if self.webhook_retry_min_s > self.webhook_retry_max_s:
            raise ValueError("need webhook_retry_min_s <= webhook_retry_max_s")
        return self

    @property
    def offline_secret(self) -> SecretStr | None:
        return self.offline_webhook_secret or self.push_webhook_secret

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
    def _cadence(self) -> Settings:
        if not self.poll_fast_interval_s <= self.poll_interval_s <= self.poll_idle_interval_s:
            raise ValueError("need poll_fast_interval_s <= poll_interval_s <= poll_idle_interval_s")
        if self.poll_idle_interval_s > self.poll_keepalive_s:
            raise ValueError("poll_idle_interval_s must not exceed poll_keepalive_s")
        return self

    @property
    def secret_keys(self) -> list[bytes]:
        raw = self.secret_key.get_secret_value()
        return [k.strip().encode() for k in raw.split(",") if k.strip()]


def _share_a_key(one: SecretStr, other: SecretStr) -> bool:
    return bool(set(webhook_keys(one)) & set(webhook_keys(other)))


def webhook_keys(secret: SecretStr) -> tuple[bytes, ...]:
    """The signing keys of a webhook secret setting (comma-separated for rotation)."""
    parts = [p for p in secret.get_secret_value().split(",") if p.strip()]
    if not parts:
        raise ValueError("must not be empty")
    return tuple(parse_secret(p) for p in parts)


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


def unknown_variables(names: Iterable[str]) -> list[str]:
    """Each unknown `BFF_*` name in `names`, with the closest known one when there is one."""
    known = known_variables()
    found = []
    for name in sorted(names):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a setting{hint}")
    return found


def load_settings() -> Settings:
    """Settings from the environment (and `BFF_SECRETS_DIR`), refusing unknown `BFF_*` names.

    Raises UnknownSettingError or pydantic's ValidationError; `describe_problem` words both.
    """
    env = os.environ
    problems = unknown_variables(env.keys())
    secrets_dir = env.get(SECRETS_DIR_VARIABLE) or None
    if secrets_dir is not None:
        folder = Path(secrets_dir)
        if not folder.is_dir():
            problems.append(f"{SECRETS_DIR_VARIABLE}: {secrets_dir} is not a directory")
        else:
            # Kubernetes adds dot-entries (..data, ..2024_...) next to the keys.
            files = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
            problems += [
                f"{p} (a file in {SECRETS_DIR_VARIABLE})" for p in unknown_variables(files)
            ]
    if problems:
        raise UnknownSettingError("\n".join(problems))
    return Settings(_secrets_dir=secrets_dir)


def describe_problem(error: Exception) -> str:
    """The startup message for any configuration problem, never echoing a value."""
    if isinstance(error, ValidationError):
        return describe_error(error)
    return "invalid configuration:\n" + "\n".join(f"  {line}" for line in str(error).splitlines())
