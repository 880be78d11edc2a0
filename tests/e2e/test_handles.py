"""Handles need no server state: they survive a restart of every instance, and a key rotation
keeps live chats working."""

from __future__ import annotations

import httpx

from harness.chats import start_chat
from harness.servers import SECRET_KEY, ServerProcess, start_bff

NEW_KEY = "rotated-secret-key-abcdefghijklmnopqrstuvwxyz"


def chat_status(server: ServerProcess, handle: str) -> int:
    return httpx.get(f"{server.url}/api/v2/chats/{handle}", timeout=15).status_code


def test_handles_survive_restarts_and_key_rotation(emulator: ServerProcess) -> None:
    first = start_bff(emulator.url)
    with httpx.Client(base_url=first.url, timeout=15) as client:
        old_handle = start_chat(client)
    first.stop()

    restarted = start_bff(emulator.url)  # a new process: nothing in memory survives
    try:
        assert chat_status(restarted, old_handle) == 200
    finally:
        restarted.stop()

    rotating = start_bff(emulator.url, BFF_SECRET_KEY=f"{NEW_KEY},{SECRET_KEY}")
    try:
        assert chat_status(rotating, old_handle) == 200
        with httpx.Client(base_url=rotating.url, timeout=15) as client:
            new_handle = start_chat(client)
    finally:
        rotating.stop()

    rotated = start_bff(emulator.url, BFF_SECRET_KEY=NEW_KEY)
    try:
        assert chat_status(rotated, new_handle) == 200
        assert chat_status(rotated, old_handle) == 404, "a retired key must stop opening handles"
    finally:
        rotated.stop()
