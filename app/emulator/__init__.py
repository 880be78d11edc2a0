"""The built-in upstream: an in-process simulation of the contact center's Customer Chat API
v2, with scripted agents, field variations, request accounting and injectable faults.

This package only exports; nothing is created or started at import time and nothing here
starts a server (run `create_emulator_app(...)` with any ASGI server or transport).
"""

from app.emulator.app import create_emulator_app
from app.emulator.config import EmulatorConfig
from app.emulator.core import Emulator
from app.emulator.faults import DroppedConnection, Faults
from app.emulator.recording import RecordedRequest
from app.emulator.state import ChatStateError, UnknownChatError

__all__ = [
    "ChatStateError",
    "DroppedConnection",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "RecordedRequest",
    "UnknownChatError",
    "create_emulator_app",
]
