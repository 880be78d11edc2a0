"""The widget's weight on a customer's page, like for like with the 7.1 KB it weighed when its
English strings were inside widget.js: what a page in English downloads of the widget's code
and strings stays within 9 KB (9,000 bytes). That is widget.js minified with terser (the pinned
version in tests/browser/package.json) and gzipped, plus lang/en.json gzipped if English is a
file (it is built into widget.js: nothing more). A page in another language also downloads
its language's file: each stays within 1.2 KB minified and gzipped. widget.css is not counted.

What pages turn on, or what only some need, is a part of its own beside widget.js, fetched
only then, each within its own budget (minified and gzipped, its strings in every language
included): cookie.js (data-cookie-domain), survey.js (data-survey), invite.js
(data-invite-after, ChatBff.invite), offline.js (leaving a message while chat is closed or
unavailable), poll.js (the long-poll fallback), transcript.js (Download transcript).
"""

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
ENGLISH_PAGE_BUDGET = 9_000
LANGUAGE_BUDGET = 1_200
PART_BUDGETS = {
    "cookie": 400,
    "survey": 1_600,
    "invite": 1_000,
    "offline": 2_200,
    "poll": 500,
    "transcript": 500,
}


def minified_gzipped_script(name: str = "widget") -> int:
    """A script as docs/widget.md measures it: terser --compress --mangle, then gzip -9."""
    node = shutil.which("node")
    if node is None or not TERSER.exists():
        missing_component("node and terser are missing (cd tests/browser && npm ci)")
    minified = subprocess.run(
        [node, str(TERSER), str(STATIC / f"{name}.js"), "--compress", "--mangle"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return len(gzip.compress(minified, 9))


def minified_gzipped_strings(path: Path) -> int:
    strings = json.loads(path.read_text(encoding="utf-8"))
    minified = json.dumps(strings, ensure_ascii=False, separators=(",", ":")).encode()
    # What the server sends is what was measured, give or take whitespace.
    assert len(path.read_bytes()) < len(minified) * 1.2, path.name
    return len(gzip.compress(minified, 9))


def test_an_english_page_downloads_at_most_9_kb_of_widget() -> None:
    english_file = STATIC / "lang" / "en.json"
    strings = minified_gzipped_strings(english_file) if english_file.exists() else 0
    size = minified_gzipped_script() + strings
    assert 4_000 < size <= ENGLISH_PAGE_BUDGET, (
        f"an English page downloads {size} bytes of widget minified and gzipped "
        f"(widget.js and {strings} bytes of lang/en.json)"
    )


@pytest.mark.parametrize("path", sorted((STATIC / "lang").glob("*.json")), ids=lambda p: p.stem)
def test_each_language_file_within_budget(path: Path) -> None:
    assert minified_gzipped_strings(path) <= LANGUAGE_BUDGET


def test_the_parts_are_exactly_those_budgeted() -> None:
    scripts = {path.stem for path in STATIC.glob("*.js")} - {"widget", "demo"}
    assert scripts == set(PART_BUDGETS)


@pytest.mark.parametrize(("name", "budget"), sorted(PART_BUDGETS.items()))
def test_each_part_within_its_budget(name: str, budget: int) -> None:
    size = minified_gzipped_script(name)
    assert 100 < size <= budget, f"{name}.js: {size} bytes minified and gzipped"
