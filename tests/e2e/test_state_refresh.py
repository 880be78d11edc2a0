"""When the poller reads the chat resource: on participant events and, once a chat has gone
quiet, periodically; never periodically while messages flow (a lively chat costs one upstream
request per interval). A chat ended upstream without any transcript entry still ends for its
viewers, one quiet window plus one refresh period later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from app.core.handles import HandleCodec
from harness.emulator import EmulatorControl, create_upstream_chat
from harness.servers import SECRET_KEY, ServerProcess, start_bff
from harness.sse import Viewer

CEILING_S = 0.3
# A chat counts as quiet after 2.5 of its longest gaps when the ceiling is this short.
LIVELY_WINDOW_S = 2.5 * CEILING_S
STATE_REFRESH_S = 1.0


@pytest.fixture(scope="module")
def quick_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_POLL_FLOOR_S="0.1",
        BFF_POLL_CEILING_S=str(CEILING_S),
        BFF_STATE_REFRESH_S=str(STATE_REFRESH_S),
    )
    yield server
    server.stop()


def chat_reads(control: EmulatorControl, upstream_id: str, since: float) -> list[float]:
    """When the chat resource (not its messages) of `upstream_id` was read after `since`."""
    path = f"/api/v2/chats/{upstream_id}"
    return [
        float(str(r["at"]))
        for r in control.requests()
        if r["method"] == "GET" and r["path"] == path and float(str(r["at"])) > since
    ]


async def test_lively_chat_reads_no_state_and_silent_end_is_caught_when_quiet(
    quick_bff: ServerProcess, emulator: ServerProcess, control: EmulatorControl
) -> None:
    upstream_id = create_upstream_chat(emulator, "Refresh")
    handle = HandleCodec([SECRET_KEY.encode()]).seal(upstream_id)
    viewer = Viewer([quick_bff.url], handle).start()
    try:
        control.agent_say(upstream_id, "first")  # the agent joins: one state read
        await viewer.wait_for(lambda v: any(e.data.get("text") == "first" for e in v.events))
        await asyncio.sleep(0.5)
        # The request log's clock is the emulator's monotonic clock: the same on one host.
        lively_from = time.monotonic()
        for n in range(12):  # 4.8 s of talk: four refresh periods, never a quiet window
            control.agent_say(upstream_id, f"line {n}")
            await asyncio.sleep(0.4)
        lively_to = time.monotonic()
        await viewer.wait_for(lambda v: any(e.data.get("text") == "line 11" for e in v.events))
        during = [t for t in chat_reads(control, upstream_id, lively_from) if t <= lively_to]
        assert during == [], f"state read {len(during)} times while the chat was lively"

        closed_at = time.monotonic()
        control.http.post(f"/chats/{upstream_id}/close-silently").raise_for_status()
        await asyncio.wait_for(viewer.ended.wait(), LIVELY_WINDOW_S + STATE_REFRESH_S + 8)
        took = time.monotonic() - closed_at
    finally:
        await viewer.stop()
    states = viewer.of("state")
    assert states[-1].data["state"] == "Idle"
    assert viewer.events[-1].event == "end"
    # Caught by a quiet-time read, not sooner than the chat could count as quiet.
    assert chat_reads(control, upstream_id, closed_at), "no state read after the chat went quiet"
    assert took < LIVELY_WINDOW_S + STATE_REFRESH_S + 3, took
