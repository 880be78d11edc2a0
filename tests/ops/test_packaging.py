"""What the image installs, done here the way the Dockerfile does it: the locked dependencies
(hashes checked) and the project's wheel in a fresh virtualenv, which then serves the widget.
And the locks: uv.lock is what pyproject.toml resolves to, the environment under test is
exactly uv.lock, and make installs nothing from a version range."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from harness.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(
    *args: str | Path, cwd: Path = ROOT, timeout: float = 300, env: dict[str, str] | None = None
) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "VIRTUAL_ENV"))}
        | (env or {}),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_lock_files_are_what_pyproject_resolves_to() -> None:
    """uv.lock answers pyproject.toml, and the two files derived from it (the image's
    requirements.lock, the uv that make installs first) are what scripts/lock writes from it."""
    run(ROOT / "scripts" / "lock", "--check")


def test_the_environment_under_test_is_exactly_the_lock() -> None:
    """`make test` runs against uv.lock's pins, runtime and developer set, and nothing else:
    whatever has been released since cannot change what CI tests (the mypy failure of a fresh
    clone after redis-py 8.2 came from installing version ranges)."""
    run(
        BIN / "uv",
        "sync",
        "--locked",
        "--check",
        "--extra",
        "dev",
        env={"UV_PROJECT_ENVIRONMENT": str(BIN.parent), "UV_PYTHON_DOWNLOADS": "never"},
    )


def test_make_installs_python_packages_from_the_lock_only() -> None:
    """Every Python install in the Makefile is hash-checked or `uv sync --locked`."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "pip install" in line:
            assert "--require-hashes" in line, line
        if " sync" in line and "uv" in line.lower():
            assert "--locked" in line, line


def test_the_image_leaves_out_what_only_tests_and_the_bench_use() -> None:
    """The Dockerfile copies app/ and nothing of tests/, bench/ or the shared harness/, and
    the build context leaves them out."""
    shared = {"tests", "bench", "harness"}
    assert shared <= set((ROOT / ".dockerignore").read_text().split())
    copied = {
        source.rstrip("/").removeprefix("./")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
        if not source.startswith("--")
    }
    assert "app" in copied
    assert not shared & copied


def test_wheel_in_a_fresh_venv_serves_the_widget(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(BIN / "uv", "build", "--wheel", "--out-dir", dist)
    (wheel,) = dist.glob("chat_bff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    parts = ("cookie.js", "survey.js", "invite.js", "offline.js", "poll.js", "transcript.js")
    for name in ("widget.js", "widget.css", "index.html", *parts):
        assert f"app/static/{name}" in names
    # What only tests and the bench use stays out (harness/, tests/, bench/).
    assert {n.split("/")[0] for n in names if "/" in n} == {
        "app",
        wheel.name.rsplit("-", 3)[0] + ".dist-info",
    }

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(
        pip,
        "install",
        "--quiet",
        "--require-hashes",
        "--only-binary=:all:",
        "-r",
        ROOT / "requirements.lock",
    )
    run(pip, "install", "--quiet", "--no-deps", wheel)
    run(pip, "check")

    # Away from the source tree: only the installed package can answer.
    port = free_port()
    server = subprocess.Popen(
        [venv / "bin" / "chat-bff", "demo", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        widget = None
        for _ in range(200):
            try:
                widget = httpx.get(f"http://127.0.0.1:{port}/static/widget.js", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, "the installed chat-bff exited"
                subprocess.run(["sleep", "0.1"], check=True)
        assert widget is not None and widget.status_code == 200
        assert widget.content == (ROOT / "static" / "widget.js").read_bytes()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "widget.js" in page.text
    finally:
        server.terminate()
        server.wait(20)
    assert run(venv / "bin" / "chat-bff", "--version").startswith("chat-bff ")
