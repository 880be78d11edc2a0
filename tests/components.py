"""Tests that need a component this machine may lack (Redis, redis-server, Chromium)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_component(message: str) -> NoReturn:
    """Skip locally, but fail on CI: a skipped test there would hide a broken install."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required on CI)")
    pytest.skip(message)
