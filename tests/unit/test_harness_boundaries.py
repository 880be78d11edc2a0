"""Who may import whom among the code that is not shipped, read from the source with `ast`:
what the tests and the bench share lives in `harness/`; the bench imports nothing of `tests`;
the harness imports neither of them nor pytest; and nothing imports a conftest or a test module
as a library (a helper a second file needs moves to a helper module beside it, or to the
harness when the bench needs it too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported(source: str, where: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module `source` imports, relative imports resolved as if it
    were the file `where`, and `from a import b` also as `a.b` (b may be a module)."""
    package = where.relative_to(ROOT).parent.parts
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def under(name: str, *roots: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def problems(source: str, where: Path) -> list[str]:
    """What `source`, as the file `where`, imports that it must not."""
    top = where.relative_to(ROOT).parts[0]
    found = []
    for line, name in imported(source, where):
        last = name.rsplit(".", 1)[-1]
        if (last == "conftest" or last.startswith("test_")) and is_module(name):
            found.append(f"{line}: {name} (a conftest or test module is no library)")
        if top == "bench" and under(name, "tests"):
            found.append(f"{line}: {name} (the bench imports from harness/, not tests/)")
        if top == "harness" and under(name, "tests", "bench", "pytest", "_pytest"):
            found.append(f"{line}: {name} (the harness stands alone)")
    return found


def sources() -> list[Path]:
    return [
        path
        for top in ("tests", "bench", "harness")
        for path in sorted((ROOT / top).rglob("*.py"))
        if "node_modules" not in path.parts
    ]


def test_tests_bench_and_harness_import_across_the_lines_drawn() -> None:
    files = sources()
    assert len(files) > 100, "the scan found too few files to mean anything"
    wrong = {
        str(path.relative_to(ROOT)): found
        for path in files
        if (found := problems(path.read_text(), path))
    }
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("tests/e2e/test_new.py", "from tests.conftest import EmulatorControl"),
        ("tests/e2e/test_new.py", "from tests.e2e.test_journey import start_chat"),
        ("tests/e2e/test_new.py", "from tests.e2e import test_journey"),
        ("tests/e2e/test_new.py", "from .test_journey import start_chat"),
        ("tests/fleet/test_new.py", "import tests.fleet.conftest"),
        ("bench/new.py", "from tests.components import missing_component"),
        ("bench/new.py", "import tests"),
        ("harness/new.py", "import pytest"),
        ("harness/new.py", "from bench.common import log"),
        ("harness/new.py", "from tests.fleet.fleet import Fleet"),
    ],
)
def test_each_line_crossed_is_caught(where: str, source: str) -> None:
    assert problems(source, ROOT / where), source


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("tests/e2e/test_new.py", "from harness.chats import start_chat"),
        ("tests/e2e/test_new.py", "from tests.e2e.background import scaled_bff"),
        ("tests/emulator/test_new.py", "from .inprocess import Harness"),
        ("bench/new.py", "from harness.servers import free_port"),
        ("harness/new.py", "from harness.servers import free_port"),
        ("tests/unit/test_new.py", "from app.core.schedule import AWAIT_GAP_MAX_S"),
    ],
)
def test_what_is_allowed_passes(where: str, source: str) -> None:
    assert problems(source, ROOT / where) == [], source
