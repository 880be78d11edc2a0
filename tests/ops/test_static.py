"""The widget under two URLs: the plain one embedders paste (cached minutes), and one under a
content hash of the files (cached a year, immutable), where widget.js finds its widget.css."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from app.edge.static_files import content_hash
from harness.servers import ServerProcess, start_bff

STATIC = Path(__file__).resolve().parents[2] / "static"


def hashed_url(server: ServerProcess) -> str:
    match = re.search(r'"widget": "(/static/v/[0-9a-f]{12}/widget\.js)"', server.logs())
    assert match, "the startup line names the widget's hashed URL"
    return match.group(1)


def test_plain_and_hashed_urls_serve_the_same_bytes(bff: ServerProcess) -> None:
    url = hashed_url(bff)
    assert url == f"/static/v/{content_hash(STATIC)}/widget.js"
    with httpx.Client(base_url=bff.url, timeout=10) as http:
        plain = http.get("/static/widget.js")
        hashed = http.get(url)
        css = http.get(url.replace("widget.js", "widget.css"))
        stale = http.get("/static/v/000000000000/widget.js")
    assert plain.content == hashed.content == (STATIC / "widget.js").read_bytes()
    assert plain.headers["Cache-Control"] == "public, max-age=300"
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.content == (STATIC / "widget.css").read_bytes()
    assert stale.status_code == 404


def test_hash_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "widget.js").write_text("one")
    (tmp_path / "widget.css").write_text("a")
    first = content_hash(tmp_path)
    (tmp_path / "widget.css").write_text("b")
    second = content_hash(tmp_path)
    (tmp_path / "widget.css").rename(tmp_path / "other.css")
    assert len({first, second, content_hash(tmp_path)}) == 3


def test_serve_shows_no_demo_page(emulator: ServerProcess) -> None:
    """A production `chat-bff serve` answers `/` with a short JSON and has no shop page
    anywhere; the widget itself is served as always."""
    server = start_bff(emulator.url, BFF_DEMO_PAGE="false")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            root = http.get("/")
            assert root.status_code == 200
            assert root.json() == {
                "service": "chat-bff",
                "docs": "/docs",
                "widget": hashed_url(server),
            }
            assert http.head("/").status_code == 200
            assert http.get("/static/index.html").status_code == 404
            assert (
                http.get(hashed_url(server).replace("widget.js", "index.html")).status_code == 404
            )
            assert http.get("/static/widget.js").status_code == 200
    finally:
        server.stop()


def test_the_demo_page_is_served_when_asked_for(emulator: ServerProcess) -> None:
    server = start_bff(emulator.url, BFF_DEMO_PAGE="true")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            page = http.get("/")
            assert page.status_code == 200
            assert page.text == (STATIC / "index.html").read_text()
            assert http.get("/static/index.html").status_code == 200
    finally:
        server.stop()
