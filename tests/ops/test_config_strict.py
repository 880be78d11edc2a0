"""Configuration that refuses mistakes: unknown BFF_* names (with the closest known one),
secrets read from files, one startup line saying what the process talks to, `--version`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from app.config.settings import Settings, known_variables, unknown_variables
from harness.servers import CONTACT_CENTER_ID, SECRET_KEY, ServerProcess, bff_env, start_emulator

GOOD = bff_env("http://127.0.0.1:9")

SUGGESTIONS = [
    ("BFF_REDIS_URI", "BFF_REDIS_URL"),
    ("BFF_SECRETKEY", "BFF_SECRET_KEY"),
    ("BFF_MAX_STREAM", "BFF_MAX_STREAMS"),
    ("BFF_LOG_FROMAT", "BFF_LOG_FORMAT"),
    ("BFF_UPSTREAM", "BFF_UPSTREAM_URL"),
    ("BFF_TRUSTED_PROXY", "BFF_TRUSTED_PROXIES"),
]


@pytest.mark.parametrize(("typo", "meant"), SUGGESTIONS)
def test_unknown_name_is_refused_with_the_closest_known_one(typo: str, meant: str) -> None:
    assert unknown_variables([typo, meant, "PATH"]) == [
        f"{typo} is not a setting (did you mean {meant}?)"
    ]


def test_far_off_names_are_refused_without_a_guess() -> None:
    assert unknown_variables(["BFF_XYZZY"]) == ["BFF_XYZZY is not a setting"]


def test_every_setting_is_known_without_a_list() -> None:
    """Names come from the Settings model: a field another module adds is accepted at once."""
    for name in Settings.model_fields:
        assert f"BFF_{name.upper()}" in known_variables()
    assert unknown_variables([f"BFF_{n.upper()}" for n in Settings.model_fields]) == []


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "9"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_a_typo_at_startup() -> None:
    result = run_serve({**GOOD, "BFF_REDIS_URI": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 2
    assert "BFF_REDIS_URI is not a setting (did you mean BFF_REDIS_URL?)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "6379" not in result.stderr  # the value is never echoed


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    """A mounted Kubernetes Secret: one file per variable. The emulator only accepts the right
    contact-center id, so a chat that starts proves the file was read."""
    (tmp_path / "BFF_CONTACT_CENTER_ID").write_text(CONTACT_CENTER_ID)
    (tmp_path / "BFF_SECRET_KEY").write_text(SECRET_KEY)
    (tmp_path / "..data").mkdir()  # what Kubernetes puts next to the keys
    emulator = start_emulator()
    server = ServerProcess(
        "serve", env={"BFF_UPSTREAM_URL": emulator.url, "BFF_SECRETS_DIR": str(tmp_path)}
    )
    try:
        server.start()
        answer = httpx.post(
            server.url + "/api/v2/chats",
            json={"operationName": "RequestChat", "nickname": "Files", "subject": "secrets"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
        emulator.stop()
    assert CONTACT_CENTER_ID not in server.logs()
    assert SECRET_KEY not in server.logs()


def test_unknown_file_in_the_secrets_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "BFF_CONTACT_CENTRE_ID").write_text(CONTACT_CENTER_ID)
    result = run_serve({**GOOD, "BFF_SECRETS_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "BFF_CONTACT_CENTRE_ID is not a setting (did you mean BFF_CONTACT_CENTER_ID?)" in (
        result.stderr
    )


def test_one_startup_line_names_bus_upstream_and_version() -> None:
    server = ServerProcess(
        "serve",
        env=bff_env(
            "http://upstream.example:8443",
            BFF_REDIS_URL="redis://127.0.0.1:6379/0",
            BFF_REDIS_PREFIX=f"ops-startup-{secrets.token_hex(4)}",
        ),
    ).start()
    server.stop()
    lines = [line for line in server.logs().splitlines() if '"logger": "chat_bff"' in line]
    startup = [line for line in lines if '"bus"' in line]
    assert len(startup) == 1, server.logs()
    line = startup[0]
    assert f'"version": "{version("chat-bff")}"' in line
    assert '"bus": "redis direct"' in line
    assert '"upstream_host": "upstream.example:8443"' in line
    assert CONTACT_CENTER_ID not in server.logs()
    assert SECRET_KEY not in server.logs()


def test_version_flag_prints_the_installed_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == f"chat-bff {version('chat-bff')}"
