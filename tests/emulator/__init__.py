"""Tests of the built-in upstream emulator (app.emulator)."""
