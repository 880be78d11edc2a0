"""The README and docs/ against the code: every setting documented with its default, no
documented `BFF_*` name that is not a setting, every test a page names exists, every link
between pages resolves, and the README stays short enough to read in five minutes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from app.config.settings import RETIRED, SECRETS_DIR_VARIABLE, Settings, known_variables

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
# Operators read these too; a misspelt name there would be pasted into a deployment.
PAGES = [README, ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md")), *ROOT.glob("deploy/**/*.md")]

BFF_NAME = re.compile(r"\bBFF_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
TEST_PATH = re.compile(r"\btests/[\w/*.-]+\.py\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
ROW = re.compile(r"^\| `(BFF_[A-Z0-9_]+)` \| ([^|]+) \|", re.MULTILINE)
# The docs' example of a typo that stops the start; it must stay a typo.
MISSPELT_ON_PURPOSE = {"BFF_REDIS_URI"}
# What `make bench` writes: a plot that a newer run adds is linked before it is committed.
GENERATED = ROOT / "bench" / "results"


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 150, len(lines)
    text = README.read_text()
    # The order a newcomer needs: what it is, the two commands, their own contact center, the rest.
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## Two commands", "## Put it in front of your contact center"]
    assert text.index("make demo") < text.index("chat-bff serve") < text.index("## Documentation")
    for name in ("BFF_UPSTREAM_URL", "BFF_CONTACT_CENTER_ID", "BFF_SECRET_KEY"):
        assert f"| `{name}` |" in text, name


def test_every_setting_is_documented_with_its_default() -> None:
    rows = dict(ROW.findall(CONFIGURATION.read_text()))
    fields = {"BFF_" + name.upper(): field for name, field in Settings.model_fields.items()}
    missing = sorted(set(fields) - set(rows))
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    assert SECRETS_DIR_VARIABLE in rows
    wrong = {
        name: (rows[name].strip(), _default(field))
        for name, field in fields.items()
        if not _same_default(rows[name].strip(), field)
    }
    assert not wrong, f"documented default != the code's: {wrong}"


def _default(field: FieldInfo) -> object:
    if field.is_required():
        return "required"
    return field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]


def _same_default(documented: str, field: FieldInfo) -> bool:
    default = _default(field)
    if default == "required":
        return documented == "required"
    if default is None:
        return documented == "unset"
    if default == []:
        return documented == "none"
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(documented.replace(",", "")) == float(default)
        except ValueError:
            return False
    return documented == str(default)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_no_page_names_a_setting_that_does_not_exist(page: Path) -> None:
    assert not MISSPELT_ON_PURPOSE & known_variables()
    named = set(BFF_NAME.findall(page.read_text())) - MISSPELT_ON_PURPOSE
    # A retired name may be named, as what a setting replaced: starting with it is an error.
    unknown = sorted(named - known_variables() - RETIRED)
    assert not unknown, f"{_rel(page)} names no such setting: {unknown}"


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=_rel)
def test_every_test_a_page_names_exists(page: Path) -> None:
    named = set(TEST_PATH.findall(page.read_text()))
    absent = sorted(path for path in named if not list(ROOT.glob(path)))
    assert not absent, f"{_rel(page)} names tests that do not exist: {absent}"


def test_the_pages_name_tests() -> None:
    """The check above must have something to check: the claims name their tests."""
    named = {p for page in PAGES for p in TEST_PATH.findall(page.read_text())}
    assert len(named) >= 20, named


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=_rel)
def test_every_link_between_pages_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # another site
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if file.is_relative_to(GENERATED) and file.suffix == ".png":
            continue
        if not file.exists() or (file.suffix == ".md" and anchor and anchor not in _anchors(file)):
            broken.append(target)
    assert not broken, f"{_rel(page)} links to what is not there: {broken}"


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    anchors = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors
