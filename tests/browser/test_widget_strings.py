"""The strings: English built into widget.js (its `EN`, written as strict JSON), every other
language one file in static/lang/. The same keys in every language, the same placeholders in
every translation, the writing direction stated, and the list the widget knows matches what
ships."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "static"
WIDGET = (STATIC / "widget.js").read_text(encoding="utf-8")
FILES = {path.stem: path for path in (STATIC / "lang").glob("*.json")}


def english() -> dict[str, str]:
    """The strings built into widget.js: `const EN = {...};`."""
    found = re.search(r"\n  const EN = (\{\n.*?\n  \});\n", WIDGET, re.DOTALL)
    assert found, "widget.js has no built-in English (const EN = {...};)"
    loaded: dict[str, str] = json.loads(found.group(1))
    return loaded


def strings(lang: str) -> dict[str, str]:
    if lang == "en":
        return english()
    loaded: dict[str, str] = json.loads(FILES[lang].read_text(encoding="utf-8"))
    return loaded


def test_the_widget_knows_exactly_the_shipped_languages() -> None:
    listed = re.search(r"const LANGS = \[([^\]]*)\]", WIDGET)
    assert listed
    assert (
        sorted(re.findall(r'"(\w+)"', listed.group(1)))
        == sorted([*FILES, "en"])
        == sorted(["ar", "de", "en", "es", "fr"])
    )


def test_english_is_built_in_only() -> None:
    """One copy of the English strings: a file beside the script would drift from it."""
    assert "en" not in FILES


@pytest.mark.parametrize("lang", sorted(FILES))
def test_same_keys_and_placeholders_as_english(lang: str) -> None:
    english_strings, other = english(), strings(lang)
    assert sorted(other) == sorted(english_strings)
    for key, text in english_strings.items():
        assert set(re.findall(r"\{\w+\}", other[key])) == set(re.findall(r"\{\w+\}", text)), key
        assert other[key].strip(), key


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("en", "ltr"), ("fr", "ltr")])
def test_writing_direction(lang: str, direction: str) -> None:
    assert strings(lang)["dir"] == direction


def test_every_key_the_widget_uses_exists() -> None:
    used = set(re.findall(r"\bT\.(\w+)", WIDGET))
    assert used and used <= set(english()), used - set(english())
