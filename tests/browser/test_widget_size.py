"""The widget's weight on a customer's page: widget.js minified with terser (the pinned
version in tests/browser/package.json) and gzipped stays within 9 KB (9,000 bytes), and each
language file within 1.2 KB. A customer downloads the script and one language file."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.components import missing_component

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[1] / "static"
TERSER = HERE / "node_modules" / "terser" / "bin" / "terser"
SCRIPT_BUDGET = 9_000
LANGUAGE_BUDGET = 1_200


def minified_gzipped_script() -> int:
    node = shutil.which("node")
    if node is None or not TERSER.exists():
        missing_component("node and terser are missing (cd tests/browser && npm ci)")
    minified = subprocess.run(
        [node, str(TERSER), str(STATIC / "widget.js"), "--compress", "--mangle"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return len(gzip.compress(minified, 9))


def test_widget_script_within_budget() -> None:
    size = minified_gzipped_script()
    assert 4_000 < size <= SCRIPT_BUDGET, f"widget.js is {size} bytes minified and gzipped"


@pytest.mark.parametrize("path", sorted((STATIC / "lang").glob("*.json")), ids=lambda p: p.stem)
def test_each_language_file_within_budget(path: Path) -> None:
    strings = json.loads(path.read_text(encoding="utf-8"))
    minified = json.dumps(strings, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(gzip.compress(minified, 9)) <= LANGUAGE_BUDGET
    # What the server sends is what was measured, give or take whitespace.
    assert len(path.read_bytes()) < len(minified) * 1.2
