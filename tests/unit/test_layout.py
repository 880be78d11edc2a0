"""The layout of app/: every module short, and the packages importing one another in one
direction only, so the package a module is in says what it may know.

The layers, each with what it may import besides itself (ARCHITECTURE.md draws the same):

    base      errors, clock, supervision, logs, version, metrics, models, events: nothing
    bus       app/bus/: base
    upstream  app/upstream/: base
    api       app/api/: base
    edge      app/edge/: base, bus (its guard roles)
    core      app/core/: base, bus, upstream, edge (its tools: limits, the abort extension)
    outbox    app/outbox/: base, bus, upstream (health, what a transcript means), api (bodies)
    runtime   app/runtime.py: the parts it holds (base, bus, upstream, edge, core, outbox)
    routes    app/routes/: base, api, edge, core, outbox, runtime
    emulator  app/emulator/: api (its docs pages)
    frame     main, cli, build, app/config/: anything

So edge knows nothing of chats, the core nothing of routes or the outbox, the upstream and
the bus nothing of each other, and nothing below the frame reads the settings. A new module
at the top of app/ must be given a layer here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
MAX_LINES = 400

BASE = frozenset(
    {"errors", "clock", "supervision", "logs", "version", "metrics", "models", "events"}
)
FRAME = frozenset({"main", "cli", "build", "config"})
PACKAGES = frozenset({"bus", "upstream", "api", "edge", "core", "outbox", "routes", "emulator"})

ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "bus": frozenset({"base"}),
    "upstream": frozenset({"base"}),
    "api": frozenset({"base"}),
    "edge": frozenset({"base", "bus"}),
    "core": frozenset({"base", "bus", "upstream", "edge"}),
    "outbox": frozenset({"base", "bus", "upstream", "api"}),
    "runtime": frozenset({"base", "bus", "upstream", "edge", "core", "outbox"}),
    "routes": frozenset({"base", "api", "edge", "core", "outbox", "runtime"}),
    "emulator": frozenset({"api"}),
    "frame": frozenset(
        {
            "base",
            "bus",
            "upstream",
            "api",
            "edge",
            "core",
            "outbox",
            "runtime",
            "routes",
            "emulator",
        }
    ),
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name under `app` (None: not placed in one)."""
    parts = module.split(".")
    if parts[0] != "app":
        return None
    if len(parts) == 1:
        return "base"  # app/__init__.py: the package's marker, nothing else
    head = parts[1]
    if head in PACKAGES:
        return head
    if head in BASE:
        return "base"
    if head in FRAME:
        return "frame"
    if head == "runtime":
        return "runtime"
    return None


def imported(source: str) -> list[str]:
    """Every `app` module a source imports, in any form, wherever (functions, TYPE_CHECKING
    blocks); a relative import is reported as `.` (the scan could not place it)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "app" or a.name.startswith("app.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append(".")
            elif node.module == "app":
                found += [f"app.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("app."):
                found.append(node.module)
    return found


def module_name(path: str) -> str:
    """`app/core/sse.py` -> `app.core.sse`; a package's `__init__.py` is the package."""
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def violations(sources: Mapping[str, str], allowed: Mapping[str, frozenset[str]]) -> list[str]:
    """What breaks the rules in `sources` (path under the repository -> text)."""
    found: list[str] = []
    for path, source in sorted(sources.items()):
        lines = len(source.splitlines())
        if lines > MAX_LINES:
            found.append(f"{path}: {lines} lines (at most {MAX_LINES}: split it by what it owns)")
        own = layer_of(module_name(path))
        if own is None:
            found.append(f"{path}: in no layer (place it in tests/unit/test_layout.py)")
            continue
        for target in imported(source):
            if target == ".":
                found.append(f"{path}: a relative import (absolute imports only)")
                continue
            layer = layer_of(target)
            if layer is None:
                found.append(f"{path}: imports {target}, which is in no layer")
            elif layer != own and layer not in allowed[own]:
                found.append(f"{path}: {own} imports {target} ({layer})")
    return found


def cycle(allowed: Mapping[str, Iterable[str]]) -> list[str]:
    """A cycle among the layers (empty: none), found by depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(layer: str) -> list[str]:
        state[layer] = 1
        path.append(layer)
        for below in sorted(allowed[layer]):
            if state.get(below) == 1:
                return [*path[path.index(below) :], below]
            if below not in state and (found := visit(below)):
                return found
        path.pop()
        state[layer] = 2
        return []

    for layer in sorted(allowed):
        if layer not in state and (found := visit(layer)):
            return found
    return []


def app_sources() -> dict[str, str]:
    return {
        str(path.relative_to(APP.parent)): path.read_text(encoding="utf-8")
        for path in sorted(APP.rglob("*.py"))
    }


def test_the_scan_sees_every_form_of_an_import() -> None:
    # Otherwise the checks below could pass by seeing nothing.
    source = (
        "import app.core.sse\n"
        "from app.edge.limits import RateLimiter\n"
        "from app import runtime, logs\n"
        "from . import sibling\n"
        "import json, app.bus\n"
        "if TYPE_CHECKING:\n    from app.outbox.push import PushHook\n"
        "def f():\n    from app.upstream.client import UpstreamClient\n"
    )
    assert imported(source) == [
        "app.core.sse",
        "app.edge.limits",
        "app.runtime",
        "app.logs",
        ".",
        "app.bus",
        "app.outbox.push",
        "app.upstream.client",
    ]


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        # The edge knows nothing of chats.
        ("app/edge/new.py", "from app.core.service import ChatService\n", "edge imports"),
        # The bus and the upstream know nothing of each other.
        ("app/bus/new.py", "import app.upstream.client\n", "bus imports"),
        # Nothing below the frame reads the settings.
        ("app/core/new.py", "from app.config.settings import Settings\n", "core imports"),
        # The base modules import no package.
        ("app/models.py", "from app.bus.chats import ChatRecord\n", "base imports"),
        # Upward: the core does not know the routes nor the runtime holding it.
        ("app/core/new.py", "from app import runtime\n", "core imports app.runtime"),
        ("app/outbox/new.py", "from app.core.registry import PollerRegistry\n", "outbox imports"),
        ("app/routes/new.py", "from app.main import create_app\n", "routes imports"),
        ("app/edge/new.py", "from . import limits\n", "relative import"),
        ("app/helpers.py", "", "in no layer"),
        ("app/core/long.py", "x = 1\n" * (MAX_LINES + 1), "401 lines"),
    ],
)
def test_a_violation_is_found(path: str, source: str, expected: str) -> None:
    found = violations({path: source}, ALLOWED)
    assert len(found) == 1
    assert expected in found[0]


def test_what_the_rules_allow_passes() -> None:
    allowed = {
        "app/routes/new.py": "from app.core.service import ChatService\nimport app.runtime\n",
        "app/core/new.py": "from app.edge.limits import RateLimiter\nimport app.bus.chats\n",
        "app/main.py": "from app.routes import chats\nfrom app.config.settings import Settings\n",
        "app/core/short.py": "x = 1\n" * MAX_LINES,
    }
    assert violations(allowed, ALLOWED) == []


def test_the_layers_form_no_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle(ALLOWED) == []


def test_every_module_of_the_app_keeps_the_layout() -> None:
    sources = app_sources()
    assert len(sources) > 90  # the scan reads the app, not an empty folder
    assert violations(sources, ALLOWED) == []
