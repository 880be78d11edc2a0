"""scripts/setup-deps, the one place that installs system packages: it names what is missing
when it may not install it, and leaves a Redis answering when it may."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup-deps"


def test_without_root_it_stops_and_names_the_packages() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is missing")
    # Run by nobody, who may not apt-get install, from a copy nobody can read (a checkout
    # under /root is not), with an empty PATH that hides python3, redis-server and chromium.
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        where.chmod(0o755)
        script = where / "setup-deps"
        shutil.copy(SCRIPT, script)
        script.chmod(0o755)
        (where / "empty").mkdir()
        result = subprocess.run(
            [
                setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/env",
                "-i",
                f"PATH={where / 'empty'}",
                "/bin/bash",
                str(script),
                "test",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert (
        "missing Debian package(s): python3-venv redis-server redis-tools chromium" in result.stderr
    )
    assert "command not found" not in result.stderr
    assert "apt-get install" in result.stderr


def test_usage_is_explained() -> None:
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_with_everything_present_a_redis_answers() -> None:
    subprocess.run(["/bin/bash", str(SCRIPT), "test"], check=True, timeout=600)
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16).startswith(b"+PONG")
