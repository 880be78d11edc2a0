"""The running version: the installed distribution's, read once from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("chat-bff")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
