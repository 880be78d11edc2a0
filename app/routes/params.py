"""Query and header parameters of the API, parsed strictly: pure functions, tested by table.

ASCII digits only, and the whole value must match (no `str.isdigit`, which accepts
superscripts and Arabic-Indic digits that `int` refuses, and no `$`, which matches before a
trailing newline). A value that does not parse is `InvalidInputError` (400), never anything
else.
"""

from __future__ import annotations

import re

from app.errors import InvalidInputError

# Nine digits: upstream indices fit, and int() of the value can never be expensive.
_INDEX = re.compile(r"[0-9]{1,9}")
# Seconds as a JSON number without a sign (how clients and generated SDKs spell a float:
# "25", "0.5", "1e-05"); the range is checked after parsing.
_SECONDS = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?")


def parse_index(raw: str | None) -> int | None:
    """`?index=N`: a message index, or None when absent."""
    if raw is None:
        return None
    if not _INDEX.fullmatch(raw):
        raise InvalidInputError("index: must be a non-negative integer")
    return int(raw)


def parse_wait(raw: str | None, limit: float) -> float | None:
    """`?wait=S`: seconds to hold a long-poll, 0 <= S <= limit, or None when absent."""
    if raw is None:
        return None
    if not _SECONDS.fullmatch(raw):
        raise InvalidInputError("wait: must be a number of seconds")
    value = float(raw)  # a huge exponent gives inf, which the range refuses
    if not 0 <= value <= limit:
        raise InvalidInputError(f"wait: must be between 0 and {limit:g}")
    return value


def parse_resume_point(header: str | None, query: str | None) -> int:
    """The index a stream resumes after: the `Last-Event-ID` header, else `?lastEventId=`;
    0 (the whole transcript) when neither is given or the value is empty. Each one given
    must be valid, even the one that does not count."""
    for raw in (header, query):
        if raw and not _INDEX.fullmatch(raw):
            raise InvalidInputError("Last-Event-ID: must be a message index")
    raw = header if header is not None else query
    return int(raw) if raw else 0
