"""The widget's files (`static/` at the repository root, `app/static` in an installed package):
served under their plain names with a short cache life, for embedders who paste one URL, and
under a content-hashed prefix, `/static/v/<hash>/...`, cached for a year as immutable.

Owns locating the files (importlib.resources, so a wheel serves them like a source tree) and
the two cache policies. It must not rewrite the files: the hash covers their bytes as shipped.
"""

from __future__ import annotations

import hashlib
import os
from importlib.resources import files
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# Short, so embedders pick up a new widget within minutes of a deploy; revalidated by ETag.
PLAIN_CACHE = "public, max-age=300"
# The hashed URL's bytes never change: a new release has a new hash.
HASHED_CACHE = "public, max-age=31536000, immutable"
HASH_CHARS = 12


def static_dir() -> Path | None:
    """The widget's directory in the installed package (a symlink to the repository's `static/`
    in a source tree, real files in a wheel), or None when it is missing."""
    path = Path(str(files("app").joinpath("static")))
    return path if path.is_dir() else None


def content_hash(directory: Path) -> str:
    """A digest of every file's name and bytes: any change to any file gives a new prefix, so
    widget.js and the widget.css it loads next to itself always come from the same release."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(os.fsencode(path.relative_to(directory).as_posix()) + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_CHARS]


# The demo shop page lives beside the widget but is no part of it: served only by the demo
# (or BFF_DEMO_PAGE), never by a production `chat-bff serve`.
DEMO_PAGE = "index.html"


class CachedStaticFiles(StaticFiles):
    """StaticFiles with one `Cache-Control` for every file it serves, and none of `hidden`."""

    def __init__(
        self, *, directory: Path, cache_control: str, hidden: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(directory=directory)
        self.cache_control = cache_control
        self.hidden = hidden

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path in self.hidden:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = self.cache_control
        return response
