"""The strings: English built into widget.js (its `EN`, written as strict JSON), every other
language one file in static/lang/. The same keys in every language, the same placeholders in
every translation, the writing direction stated, and the list the widget knows matches what
ships. The optional parts (offline.js, survey.js, invite.js) carry their own strings in every
language the widget speaks (their `S`, strict JSON too), held to the same rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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


PARTS = ["offline", "survey", "invite"]


def part_strings(name: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """A part's source and its strings by language: `const S = {...};`."""
    source = (STATIC / f"{name}.js").read_text(encoding="utf-8")
    found = re.search(r"\n  const S = (\{\n.*?\n  \});\n", source, re.DOTALL)
    assert found, f"{name}.js has no strings (const S = {{...}};)"
    loaded: dict[str, dict[str, Any]] = json.loads(found.group(1))
    return source, loaded


def texts(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", PARTS)
def test_parts_speak_every_language_alike(name: str) -> None:
    source, table = part_strings(name)
    assert sorted(table) == sorted([*FILES, "en"])
    english_strings = table["en"]
    for lang, strings_of in table.items():
        assert sorted(strings_of) == sorted(english_strings), lang
        for key, value in english_strings.items():
            theirs, ours = texts(strings_of[key]), texts(value)
            assert len(theirs) == len(ours), (lang, key)
            for text, original in zip(theirs, ours, strict=True):
                assert text.strip(), (lang, key)
                assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", original))
    # Its own strings (t.x) and the widget's (T.x) it uses all exist.
    assert set(re.findall(r"\bt\.(\w+)", source)) <= set(english_strings)
    assert set(re.findall(r"\bT\.(\w+)", source)) <= set(english())
