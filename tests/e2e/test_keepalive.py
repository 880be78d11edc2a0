"""The background keep-alive is for chats someone reads: a chat created and never read is
polled for the short grace (`BFF_UNREAD_KEEPALIVE_S`) and then left, so the upstream's idle
timeout ends it; a read chat, or one created with a pushToken, keeps its keep-alive; and one
client keeps at most `BFF_KEEPALIVE_CHATS_PER_CLIENT` chats alive in the background.

Times are scaled down twelve-fold from production, as in `test_background.py`: idle disconnect
45 s -> 3.75 s, keep-alive cadence 10 s -> 1 s, short grace 30 s -> 2.5 s. The upstream's
request log counts the polls of each chat.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.chats import wait_for
from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_emulator
from tests.e2e.background import IDLE_DISCONNECT_S, KEEPALIVE_S, scaled_bff, upstream_id_of

UNREAD_S = 2.5
PER_CLIENT = 3
POLL_INTERVAL_S = 0.4  # scaled_bff's ceiling: its polls' longest gap while watched


@pytest.fixture(scope="module")
def strict_upstream() -> Iterator[ServerProcess]:
    server = start_emulator(
        *("--agent-join-delay", "0.2", "--agent-reply-delay", "0.2"),
        *("--idle-disconnect", str(IDLE_DISCONNECT_S)),
    )
    yield server
    server.stop()


def create(client: httpx.Client, nickname: str, **extra: Any) -> str:
    body = {"operationName": "RequestChat", "nickname": nickname, "subject": "keep", **extra}
    answer = client.post("/api/v2/chats", json=body)
    assert answer.status_code == 200, answer.text
    handle: str = answer.json()["id"]
    return handle


def polls(control: EmulatorControl, upstream_id: str, since: float = 0.0) -> int:
    """GETs of the chat (its messages and state) the upstream received since `since`."""
    return sum(
        1
        for r in control.requests()
        if r.get("chat_id") == upstream_id
        and r.get("method") == "GET"
        and float(str(r["at"])) >= since
    )


def metric(bff: ServerProcess, outcome: str) -> float:
    text = httpx.get(bff.url + "/metrics", timeout=5).text
    found = re.search(rf'^bff_background_keepalive_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


def test_a_chat_nobody_reads_is_left_and_read_chats_keep_their_keepalive(
    strict_upstream: ServerProcess,
) -> None:
    bff = scaled_bff(
        strict_upstream,
        60,
        BFF_UNREAD_KEEPALIVE_S=str(UNREAD_S),
        BFF_KEEPALIVE_CHATS_PER_CLIENT=str(PER_CLIENT),
    )
    control = EmulatorControl(strict_upstream.url)
    try:
        with httpx.Client(base_url=bff.url, timeout=10) as client:
            created_at = time.monotonic()
            create(client, "Unread")
            create(client, "Pushed", pushToken="device-token-1")  # an app: kept, unread
            for name in ("Read1", "Read2", "Capped"):  # the third read is over the cap
                handle = create(client, name)
                answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
                assert answer.status_code == 200
        ids = {name: upstream_id_of(control, name) for name in ("Unread", "Pushed", "Capped")}
        ids.update({name: upstream_id_of(control, name) for name in ("Read1", "Read2")})

        # Left after the short grace: no poll for the idle timeout, and the upstream ends it.
        for name in ("Unread", "Capped"):
            wait_for(
                lambda n=name: control.chat(ids[n])["customer_disconnected"],
                timeout_s=UNREAD_S + IDLE_DISCONNECT_S + 10,
                what=f"the upstream to drop {name}, nobody polling it",
            )
        left = {name: polls(control, ids[name]) for name in ("Unread", "Capped")}
        # A bounded number of polls: the short grace at the ceiling, with the state
        # reads (8 here; before, the 600 s keep-alive polled such a chat about 84 times).
        bound = 2 * (UNREAD_S / POLL_INTERVAL_S + 3)
        assert all(n <= bound for n in left.values()), left

        watched_from = time.monotonic()
        time.sleep(3 * KEEPALIVE_S)
        for name in ("Unread", "Capped"):
            assert polls(control, ids[name]) == left[name], f"{name} was polled again"
        for name in ("Pushed", "Read1", "Read2"):
            view = control.chat(ids[name])
            assert view["customer_present"] is True and not view["customer_disconnected"], name
            assert polls(control, ids[name], since=watched_from) >= 2, f"{name} not kept alive"
        assert time.monotonic() - created_at > UNREAD_S + IDLE_DISCONNECT_S
        assert metric(bff, "granted") >= PER_CLIENT
        assert metric(bff, "refused") >= 1
    finally:
        control.http.close()
        bff.stop()
