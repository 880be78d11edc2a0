"""Headless Chromium as the browser tests run it (Debian's, never a downloaded one), where they
leave their artifacts, and the chat-bff settings of the widget's own test modules."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


# Without the background-networking flags Chromium keeps calling home, which fails slowly here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


# For the widget's own modules: the chat-creation and send limits of the session's chat-bff,
# and a brisk cadence, since these tests are about what the widget shows, not how often
# chat-bff polls (the modules on the session's chat-bff keep the shipped cadence).
WIDGET_BFF = {
    "BFF_CHAT_CREATE_PER_MINUTE": "60000",
    "BFF_CHAT_CREATE_BURST": "10000",
    "BFF_SEND_PER_MINUTE": "60000",
    "BFF_SEND_BURST": "10000",
    "BFF_POLL_FLOOR_S": "0.25",
    "BFF_POLL_CEILING_S": "0.5",
}
