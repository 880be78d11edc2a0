"""Settings: every knob of the service, read once from `BFF_*` environment variables.

Owns `Settings`, the one object of them all, composed of the groups (by the part that reads
them) of `parts.py`, `edge.py` and `hooks.py`, checked at startup; and the strict
environment: unknown `BFF_*` names refused with the closest known one, retired ones named with
what replaced them, `BFF_SECRETS_DIR` files. It must not be imported for its values by anything
but `main.py`, `build.py` and `cli.py`: other modules receive plain values in their
constructors.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.config.edge import EdgeSettings, IdempotencySettings, LogSettings
from app.config.hooks import HookSettings
from app.config.parts import (
    BusSettings,
    ClientLimitSettings,
    PollSettings,
    StreamSettings,
    UpstreamSettings,
)


class Settings(
    UpstreamSettings,
    BusSettings,
    PollSettings,
    StreamSettings,
    ClientLimitSettings,
    EdgeSettings,
    IdempotencySettings,
    LogSettings,
    HookSettings,
    BaseSettings,
):
    """All configuration, flat: each field of each group is one `BFF_*` variable. Durations
    are seconds (`_s`), sizes bytes or characters. The groups, and which part reads each, are
    in `parts.py` (the service), `edge.py` (the request edge, idempotency, logs) and `hooks.py`
    (push, business hours, leave-a-message, surveys, the outbox)."""

    model_config = SettingsConfigDict(env_prefix="BFF_", extra="ignore", frozen=True)


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


# The poll intervals of old, replaced by one read budget (app/core/schedule.py).
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
