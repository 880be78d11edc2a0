"""Fixtures for the emulator tests (helpers live in inprocess.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.emulator import Emulator, EmulatorConfig, create_emulator_app

from .inprocess import BASE_URL, CC_ID, FAST, Harness, HarnessFactory


@pytest.fixture
async def make_harness() -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    async def factory(**overrides: Any) -> Harness:
        emulator = Emulator(EmulatorConfig(**{**FAST, **overrides}))
        app = create_emulator_app(emulator)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"ContactCenterId": CC_ID},
        )
        harness = Harness(emulator, app, client)
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        for client in [harness.client, *harness.extra_clients]:
            await client.aclose()
        await harness.emulator.aclose()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    return await make_harness()
