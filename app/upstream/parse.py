"""Pure functions over the raw parts of an upstream answer: its JSON body, its Retry-After
and its Set-Cookie headers. Tested by tables.

The upstream is someone else's system: anything may come back. Each function here turns what
it is given into a value we can use or into "nothing usable" (None, or an entry left out),
and never raises for any input. It must not do I/O and must not know the Customer Chat API's
operations (that is `client.py`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

MAX_RETRY_AFTER_S = 120
# Cookies kept from one answer, and the longest value kept: a session cookie or two is what
# an upstream's load balancer sets; more is not a session.
MAX_COOKIES = 16
MAX_COOKIE_BYTES = 4096

# RFC 6265 section 4.1.1: a cookie name is an RFC 7230 token; a value is cookie-octets,
# optionally in double quotes. No controls, spaces, quotes inside, commas, semicolons or
# backslashes, and nothing outside ASCII.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(
    r'"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"|[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*'
)
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A body as JSON: `value` is None when it is not JSON we can read, and `problem` then
    says why in our words (for logs: never the body itself)."""

    value: Any
    problem: str | None = None


def decode_json(body: bytes) -> Decoded:
    try:
        return Decoded(json.loads(body))
    except RecursionError:
        return Decoded(None, "nested too deep")
    except UnicodeDecodeError:
        return Decoded(None, "not UTF-8")
    except ValueError:
        # Not JSON at all, or an integer too long to convert (Python refuses > 4300 digits).
        return Decoded(None, "not JSON")


def retry_after_s(
    value: str, *, now: float | None = None, cap_s: int = MAX_RETRY_AFTER_S
) -> int | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date), capped at
    `cap_s`; None when absent or unreadable (digits only in ASCII: `²` is no number)."""
    value = value.strip()
    if not value:
        return None
    if _DIGITS.fullmatch(value):
        return min(int(value), cap_s)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    wait = when - (time.time() if now is None else now)
    if math.isnan(wait):
        return None
    return max(0, min(math.ceil(wait), cap_s))


def parse_set_cookies(headers: Iterable[str], *, now: float | None = None) -> dict[str, str]:
    """Cookies the upstream set, name -> value as it is to be sent back ("" = deleted: a
    Max-Age of 0 or less, or an Expires in the past). A cookie whose name or value breaks
    RFC 6265 is left out: sent back, it could break our request (control characters) or be
    read differently by the upstream than we stored it."""
    cookies: dict[str, str] = {}
    moment = time.time() if now is None else now
    for header in headers:
        if len(cookies) >= MAX_COOKIES:
            break
        pair, *attributes = header.split(";")
        name, equals, value = pair.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if not equals or not _TOKEN.fullmatch(name) or len(value) > MAX_COOKIE_BYTES:
            continue
        if not _COOKIE_VALUE.fullmatch(value):
            continue
        cookies[name] = "" if _expired(attributes, moment) else value
    return cookies


def _expired(attributes: list[str], now: float) -> bool:
    for attribute in attributes:
        key, _, raw = attribute.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if key == "max-age":
            # Max-Age wins over Expires (RFC 6265 5.3 step 3).
            return bool(re.fullmatch(r"-?[0-9]{1,10}", raw)) and int(raw) <= 0
    for attribute in attributes:
        key, _, raw = attribute.partition("=")
        if key.strip().lower() == "expires":
            try:
                return parsedate_to_datetime(raw.strip()).timestamp() <= now
            except (TypeError, ValueError, IndexError, OverflowError):
                return False
    return False
