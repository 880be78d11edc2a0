"""The bus's seams: its private modules stay behind `app/bus/`, and the memory bus runs without
the Redis client library (a one-process deployment needs no `redis` installed or loaded)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from types import ModuleType

APP = Path(__file__).resolve().parents[2] / "app"


def _private_bus_imports(source: str) -> list[str]:
    """The `app.bus._*` modules (or `_` names of `app.bus`) a module's source imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("app.bus._")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("app.bus._"):
                found.append(node.module)
            elif node.module == "app.bus":
                found += [f"app.bus.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_the_scan_sees_every_form_of_a_private_import() -> None:
    # Otherwise the test below could pass by seeing nothing.
    source = (
        "import app.bus._calls\n"
        "from app.bus._connect import make_clients\n"
        "from app.bus import _scripts, make_bus\n"
        "from app.bus.memory import MemoryBus\n"
        "def f():\n    from app.bus._hub import check_chat\n"
    )
    assert _private_bus_imports(source) == [
        "app.bus._calls",
        "app.bus._connect",
        "app.bus._scripts",
        "app.bus._hub",
    ]


def test_nothing_outside_the_bus_imports_its_private_modules() -> None:
    bus = APP / "bus"
    offenders = {
        str(path.relative_to(APP.parent)): found
        for path in sorted(APP.rglob("*.py"))
        if bus not in path.parents
        and (found := _private_bus_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "export what is needed from app.bus instead"


def _ours(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in ("app", "redis"))


async def test_the_memory_bus_never_loads_redis() -> None:
    # A fresh import of the whole `app` package in this process: every module of ours and of
    # redis-py is taken out of sys.modules for the import and put back afterwards, so the rest
    # of the session keeps the very module objects (and classes) it had.
    saved = {name: module for name, module in sys.modules.items() if _ours(name)}
    for name in saved:
        del sys.modules[name]
    try:
        package: ModuleType = importlib.import_module("app.bus")
        bus = package.make_bus(None)
        await bus.commit(await bus.acquire("chat", 5.0), ())
        await bus.aclose()
        loaded = sorted(name for name in sys.modules if _ours(name))
    finally:
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert type(bus).__name__ == "MemoryBus"
    assert "app.bus.memory" in loaded  # the fresh import did happen
    assert [name for name in loaded if name == "redis" or name.startswith("redis.")] == []
    assert "app.bus.redis" not in loaded
