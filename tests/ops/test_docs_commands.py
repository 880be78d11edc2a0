"""The shell blocks the README and docs/ mark runnable, run as a reader would paste them.

A block is runnable when the line `<!-- runnable -->` comes right before its ```sh fence. The
runnable blocks of one page run in order, in one `bash -e`, in a scratch directory that links
the repository's files (so `.venv/bin/chat-bff` is where the README says it is), with no
`BFF_*` variable inherited. The pages write ports as 8000 (chat-bff), 8080 (the emulator) and
9000 (an internal port); each is replaced by a free port here. Servers a block starts in the
background are killed with the whole process group at the end, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.servers import free_port
from tests.components import missing_component

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "<!-- runnable -->"
BLOCK = re.compile(r"^<!-- runnable -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PORT = re.compile(r"(?<!\d)(8000|8080|9000)(?!\d)")
# Two servers' start-ups (each imports the whole app: seconds on a loaded machine) and a chat
# with the emulator's agent. A deadline, not a measurement: nothing here is timed.
RUN_TIMEOUT_S = 200


def runnable_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_mark_is_on_a_shell_block() -> None:
    """A mark before anything but a ```sh fence would leave its commands unrun, silently."""
    for page in PAGES:
        marks = [line for line in page.read_text().splitlines() if line.strip() == MARK]
        assert len(marks) == len(runnable_blocks(page)), _rel(page)


def test_the_readme_walk_through_is_runnable() -> None:
    """ "Put it in front of your contact center" is run as written, not only shown."""
    text = ROOT.joinpath("README.md").read_text()
    section = text[text.index("## Put it in front of your contact center") :]
    section = section[: section.index("\n## ", 1)]
    script = "\n".join(BLOCK.findall(section))
    for step in (
        "chat-bff emulator",
        "export BFF_UPSTREAM_URL=",
        "export BFF_CONTACT_CENTER_ID=",
        "export BFF_SECRET_KEY=",
        ".venv/bin/chat-bff serve",
        "/healthz",
        "/readyz",
        '"RequestChat"',
        '"SendMessage"',
        "/static/widget.js",
    ):
        assert step in script, step


@pytest.mark.timeout(RUN_TIMEOUT_S + 40)
@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=_rel)
def test_runnable_blocks_run(page: Path, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        missing_component("curl is not installed (scripts/setup-deps installs it)")
    ports = {literal: str(free_port()) for literal in ("8000", "8080", "9000")}
    script = "\n".join(runnable_blocks(page))
    script = PORT.sub(lambda match: ports[match.group(1)], script)
    scratch = _scratch_repository(tmp_path / "repo")
    (tmp_path / "run.sh").write_text(script)
    output = tmp_path / "output.txt"
    with output.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-e", str(tmp_path / "run.sh")],
            cwd=scratch,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            _kill_group(process)
    log = output.read_text(errors="replace")
    assert status is not None, f"{_rel(page)}: still running after {RUN_TIMEOUT_S} s\n{log}"
    assert status == 0, f"{_rel(page)}: exit status {status}\n{script}\n--- output ---\n{log}"


def _scratch_repository(path: Path) -> Path:
    """The repository's top level as links, the virtualenv under test as `.venv`: what a
    block writes lands here, not in the checkout."""
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", ".venv"):
            (path / entry.name).symlink_to(entry)
    (path / ".venv").symlink_to(Path(sys.prefix))
    return path


def _environment() -> dict[str, str]:
    """The reader's shell: no BFF_* settings, and `.venv/bin` not on the PATH (the pages say
    where chat-bff is)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BFF_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """The shell and everything it started in the background: one process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
            # The shell may be gone while a server it started is still shutting down.
            os.killpg(process.pid, 0)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
