"""Settings of the hooks: push notices, business hours, leave-a-message, post-chat surveys and
the webhook outbox.

Owns these fields of `settings.Settings` (which inherits them, so they are `BFF_*` variables
like any other) and their checks at startup: each webhook URL needs its own secret (a
receiver holding the other's could forge its notices), secrets in the Standard Webhooks
format, quotas per kind of notice. It must not be read by anything but `main.py`,
`build.py` and `cli.py`, like `settings.py`.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from app.config.parts import default_of
from app.outbox import hours
from app.outbox.signing import parse_secret
from app.outbox.webhooks import DeliveryTuning

MIB = 1 << 20


class HookSettings(BaseSettings):
    push_webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description="Signed notices of agent messages and chat ends nobody was reading; unset: off",
    )
    push_webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_<base64 key>; comma-separated: all sign (rotation). Needed with the URL",
    )
    push_max_age_s: float = Field(
        default=3600.0, gt=0, description="A push notice not delivered by then is dead-lettered"
    )
    offline_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Signed deliveries of left messages; unset: leaving one is off"
    )
    offline_webhook_secret: SecretStr | None = Field(
        default=None,
        description="As push_webhook_secret, and needed with the URL: never the push secret",
    )
    survey_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Signed deliveries of post-chat surveys; unset: surveys are off"
    )
    survey_webhook_secret: SecretStr | None = Field(
        default=None,
        description="As push_webhook_secret, and needed with the URL: its own, no other's key",
    )
    business_hours: str | None = Field(
        default=None,
        description="Zone; weekly ranges; closed dates (app/outbox/hours.py). Unset: open",
    )
    webhook_timeout_s: float = Field(default=default_of(DeliveryTuning, "timeout_s"), gt=0, le=60)
    webhook_retry_min_s: float = Field(default=default_of(DeliveryTuning, "retry_min_s"), gt=0)
    webhook_retry_max_s: float = Field(default=default_of(DeliveryTuning, "retry_max_s"), gt=0)
    # -- outbox quotas, per kind: a receiver down fills its own kind's, never another's ----
    push_outbox_max: int = Field(
        default=100_000,
        ge=10,
        description="Push notices waiting at most, fleet-wide; more are dropped (counted)",
    )
    push_outbox_max_bytes: int = Field(
        default=64 * MIB, ge=MIB, description="Bytes of push notices waiting at most, fleet-wide"
    )
    offline_outbox_max: int = Field(
        default=10_000,
        ge=10,
        description="Left messages waiting at most, fleet-wide; more are refused (507)",
    )
    offline_outbox_max_bytes: int = Field(
        default=64 * MIB, ge=MIB, description="Bytes of left messages waiting at most, fleet-wide"
    )
    offline_max_age_s: float = Field(
        default=3 * 86_400.0,
        gt=0,
        description="A left message not delivered by then is dead-lettered (counted, logged)",
    )
    survey_outbox_max: int = Field(
        default=10_000,
        ge=10,
        description="Surveys waiting at most, fleet-wide; more are refused (507)",
    )
    survey_outbox_max_bytes: int = Field(
        default=16 * MIB, ge=MIB, description="Bytes of surveys waiting at most, fleet-wide"
    )
    survey_max_age_s: float = Field(
        default=3 * 86_400.0,
        gt=0,
        description="A survey not delivered by then is dead-lettered (counted, logged)",
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
    def _webhooks(self) -> HookSettings:
        """Each webhook URL needs its own secret, and no two secrets share a key: a receiver
        holding another's key could sign that kind's notices."""
        hooks = {
            "PUSH": (self.push_webhook_url, self.push_webhook_secret),
            "OFFLINE": (self.offline_webhook_url, self.offline_webhook_secret),
            "SURVEY": (self.survey_webhook_url, self.survey_webhook_secret),
        }
        for name, (url, secret) in hooks.items():
            if url is not None and secret is None:
                raise ValueError(
                    f"BFF_{name}_WEBHOOK_URL needs BFF_{name}_WEBHOOK_SECRET (its own secret: "
                    "no other webhook's secret signs these notices)"
                )
        named = [(name, secret) for name, (_, secret) in hooks.items() if secret is not None]
        for i, (name, secret) in enumerate(named):
            for other, other_secret in named[:i]:
                if _share_a_key(secret, other_secret):
                    raise ValueError(
                        f"BFF_{name}_WEBHOOK_SECRET must not share a key with "
                        f"BFF_{other}_WEBHOOK_SECRET: either receiver could sign the other's "
                        "notices"
                    )
        if self.webhook_retry_min_s > self.webhook_retry_max_s:
            raise ValueError("need webhook_retry_min_s <= webhook_retry_max_s")
        return self


def _share_a_key(one: SecretStr, other: SecretStr) -> bool:
    return bool(set(webhook_keys(one)) & set(webhook_keys(other)))


def webhook_keys(secret: SecretStr) -> tuple[bytes, ...]:
    """The signing keys of a webhook secret setting (comma-separated for rotation)."""
    parts = [p for p in secret.get_secret_value().split(",") if p.strip()]
    if not parts:
        raise ValueError("must not be empty")
    return tuple(parse_secret(p) for p in parts)
