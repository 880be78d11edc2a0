"""The caching policy of answers that did not choose one."""

from __future__ import annotations

import pytest

from app.edge.guard import cache_control_for


@pytest.mark.parametrize(
    ("path", "status", "expected"),
    [
        ("/static/widget.js", 200, "public, max-age=300"),
        ("/static/widget.js", 304, "public, max-age=300"),
        ("/static/nothing.js", 404, "no-store"),
        ("/", 200, "no-cache"),
        ("/", 500, "no-store"),
        ("/healthz", 200, "no-store"),
        ("/docs", 200, "no-store"),
        ("/api/v2/chats", 405, "no-store"),
        ("/api/v2/chats/x/events", 200, "no-store"),
        ("/staticfoo", 200, "no-store"),
    ],
)
def test_cache_control_for(path: str, status: int, expected: str) -> None:
    assert cache_control_for(path, status) == expected
