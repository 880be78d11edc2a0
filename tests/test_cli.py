"""Process tuning done by the `chat-bff` entry points."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.cli import GC_YOUNG_THRESHOLD, _tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_startup_objects_are_frozen_and_young_collections_are_rare() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    _tune_gc()
    # Everything alive at startup (modules, routes, settings) is out of every collection...
    assert gc.get_freeze_count() > 10_000
    # ...and the young generation is collected after tens of thousands of allocations, not 700.
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD >= 10_000
    assert gc.isenabled()
