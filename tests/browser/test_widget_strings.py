"""The language files: the same keys in every language, the same placeholders in every
translation, the writing direction stated, and the list the widget knows matches the files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "static"
LANGS = {path.stem: path for path in (STATIC / "lang").glob("*.json")}


def strings(lang: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads(LANGS[lang].read_text(encoding="utf-8"))
    return loaded


def test_the_widget_knows_exactly_the_shipped_languages() -> None:
    listed = re.search(r"const LANGS = \[([^\]]*)\]", (STATIC / "widget.js").read_text())
    assert listed
    assert (
        sorted(re.findall(r'"(\w+)"', listed.group(1)))
        == sorted(LANGS)
        == sorted(["ar", "de", "en", "es", "fr"])
    )


@pytest.mark.parametrize("lang", sorted(set(LANGS) - {"en"}))
def test_same_keys_and_placeholders_as_english(lang: str) -> None:
    english, other = strings("en"), strings(lang)
    assert sorted(other) == sorted(english)
    for key, text in english.items():
        assert set(re.findall(r"\{\w+\}", other[key])) == set(re.findall(r"\{\w+\}", text)), key
        assert other[key].strip(), key


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("en", "ltr"), ("fr", "ltr")])
def test_writing_direction(lang: str, direction: str) -> None:
    assert strings(lang)["dir"] == direction


def test_every_key_the_widget_uses_exists() -> None:
    used = set(re.findall(r"\bT\.(\w+)", (STATIC / "widget.js").read_text()))
    assert used and used <= set(strings("en")), used - set(strings("en"))
