"""The request edge's settings, grouped by the part that reads them: handles, origins,
proxies, bodies and request heads, the internal port; `Idempotency-Key`; the log lines.
`settings.Settings` inherits every group, so each field is a `BFF_*` variable.

Owns these fields, their limits and checks; a default a component owns is read from it
(`parts.default_of`). It must not be read by anything but `main.py`, `build.py` and `cli.py`,
like `settings.py`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from app.config.parts import default_of
from app.edge.clients import IPV6_PREFIX_LEN
from app.edge.serving import ConnectionLimits

MIN_SECRET_KEY_CHARS = 32

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class EdgeSettings(BaseSettings):
    """The request edge: handles (`core.handles`), origins (`edge.cors`), proxies
    (`edge.proxy_trust`, `edge.clients`), bodies (`edge.guard`), request heads (`edge.serving`),
    the internal port (`edge.ports`), the page at /."""

    secret_key: SecretStr = Field(
        description="Seals chat handles. Comma-separated: the first seals, all open (rotation)."
    )
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
    max_body_bytes: int = Field(default=32_768, ge=1024)
    demo_page: bool = Field(
        default=False,
        description="Serve the demo shop page at / (chat-bff demo does); off: / answers JSON",
    )
    # -- hardening (issue 11) -------------------------------------------------------------
    header_timeout_s: float = Field(
        default=default_of(ConnectionLimits, "header_timeout_s"),
        gt=0,
        le=300,
        description="A request's line and headers, and then its body, must each arrive "
        "within this; else 408 (or the connection is dropped mid-body)",
    )
    max_header_bytes: int = Field(
        default=default_of(ConnectionLimits, "max_header_bytes"),
        ge=4096,
        description="Request line plus headers; larger gets 431",
    )
    internal_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="chat-bff serve also listens here for /healthz, /readyz and /metrics "
        "only; when set, /metrics is no longer served on the public port",
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

    @field_validator("secret_key")
    @classmethod
    def _keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("must not be empty")
        if any(len(k) < MIN_SECRET_KEY_CHARS for k in keys):
            raise ValueError(f"each key needs at least {MIN_SECRET_KEY_CHARS} characters")
        return value

    @property
    def secret_keys(self) -> list[bytes]:
        raw = self.secret_key.get_secret_value()
        return [k.strip().encode() for k in raw.split(",") if k.strip()]


class IdempotencySettings(BaseSettings):
    """What `Idempotency-Key` keeps and for how long: read by `idempotency.IdempotencyGuard`."""

    idempotency_window_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86_400,
        description="How long the answer to a POST with an Idempotency-Key is replayed",
    )
    # -- the request edge (issue 18): idempotency bounds ----------------------------------
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


class LogSettings(BaseSettings):
    """The process's log lines: read by `logs.configure` (from `cli.py`)."""

    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: for a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
