"""The background keep-alive's scaled-down world, shared by the e2e files that need it: an
upstream dropping silent customers after 3.75 s (45 s in production), a chat-bff whose
keep-alive cadence is 1 s (10 s), and finding a chat upstream by its customer's nickname."""

from __future__ import annotations

from harness.emulator import EmulatorControl
from harness.servers import ServerProcess, start_bff

IDLE_DISCONNECT_S = 3.75
KEEPALIVE_S = 1.0
READER_WINDOW_S = 1.5


def scaled_bff(
    upstream: ServerProcess, background_keepalive_s: float, **extra: str
) -> ServerProcess:
    return start_bff(
        upstream.url,
        BFF_POLL_FLOOR_S="0.2",
        BFF_POLL_CEILING_S="0.4",
        BFF_POLL_KEEPALIVE_S=str(KEEPALIVE_S),
        BFF_READER_WINDOW_S=str(READER_WINDOW_S),
        BFF_BACKGROUND_KEEPALIVE_S=str(background_keepalive_s),
        **extra,
    )


def upstream_id_of(control: EmulatorControl, nickname: str) -> str:
    chats = control.http.get("/chats").json()["chats"]
    for chat in chats:
        if control.chat(chat["id"])["nickname"] == nickname:
            return str(chat["id"])
    raise AssertionError(f"no upstream chat for {nickname}")
