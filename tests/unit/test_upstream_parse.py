"""What the upstream answers, parsed without ever raising: JSON bodies, Retry-After,
Set-Cookie. Tables, plus properties over arbitrary input."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.upstream.parse import (
    MAX_RETRY_AFTER_S,
    decode_json,
    parse_set_cookies,
    retry_after_s,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("body", "value", "problem"),
    [
        (b'{"statusCode":0}', {"statusCode": 0}, None),
        (b"[" * 200_000 + b"]" * 200_000, None, "nested too deep"),
        (b"\xff\xfe{", None, "not UTF-8"),
        (b"<html>", None, "not JSON"),
        (b"", None, "not JSON"),
        (b"1" * 5000, None, "not JSON"),  # more digits than Python converts
        (b'{"a":"\\ud800"}', {"a": "\ud800"}, None),  # lone surrogates decode; cleaned later
    ],
)
def test_decode_json(body: bytes, value: object, problem: str | None) -> None:
    decoded = decode_json(body)
    assert decoded.value == value
    assert decoded.problem == problem


def _http_date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", None),
        ("30", 30),
        (" 7 ", 7),
        ("0", 0),
        ("100000", MAX_RETRY_AFTER_S),
        ("²", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        (_http_date(NOW + 42), 42),
        (_http_date(NOW - 42), 0),
        (_http_date(NOW + 10_000), MAX_RETRY_AFTER_S),
        ("Mon, 99 Foo 99999 99:99:99 GMT", None),
    ],
)
def test_retry_after(header: str, seconds: int | None) -> None:
    assert retry_after_s(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("299", 299), ("100000", 300), (_http_date(NOW + 250), 250), ("\u00b2", None)],
)
def test_retry_after_with_another_cap(header: str, seconds: int | None) -> None:
    """The webhook workers read receivers' answers with their own longest wait."""
    assert retry_after_s(header, now=NOW, cap_s=300) == seconds


@pytest.mark.parametrize(
    ("headers", "cookies"),
    [
        (["sid=abc; Path=/; HttpOnly"], {"sid": "abc"}),
        (['sid="quoted"; Path=/'], {"sid": '"quoted"'}),
        (["sid=; Max-Age=0"], {"sid": ""}),
        (["sid=abc; Max-Age=-1"], {"sid": ""}),
        (["sid=abc; Max-Age=60"], {"sid": "abc"}),
        ([f"sid=abc; Expires={_http_date(NOW - 1)}"], {"sid": ""}),
        ([f"sid=abc; Expires={_http_date(NOW + 60)}"], {"sid": "abc"}),
        ([f"sid=abc; Max-Age=60; Expires={_http_date(NOW - 1)}"], {"sid": "abc"}),
        (["sid=abc; Expires=garbage"], {"sid": "abc"}),
        # Broken ones are left out, the good ones kept.
        (['ctl="a\x01b"', "ok=1"], {"ok": "1"}),
        (["obs=\udcff\udcfe", "ok=1"], {"ok": "1"}),
        (["tab=a\tb"], {}),
        (["sp=a b"], {}),
        (["semi=a,b"], {}),
        (["bad name=1"], {}),
        (["=novalue"], {}),
        (["noequals"], {}),
        (["long=" + "x" * 5000], {}),
        (["é=1"], {}),
        ([f"c{n}=v" for n in range(40)], {f"c{n}": "v" for n in range(16)}),
    ],
)
def test_set_cookies(headers: list[str], cookies: dict[str, str]) -> None:
    assert parse_set_cookies(headers, now=NOW) == cookies


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_decode_never_raises(body: bytes) -> None:
    decode_json(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=20), st.text(max_size=60))
def test_cookies_and_retry_after_never_raise_and_stay_sendable(
    headers: list[str], retry: str
) -> None:
    for name, value in parse_set_cookies(headers, now=NOW).items():
        sent = f"{name}={value}"
        assert sent.isascii()
        assert all(0x21 <= ord(c) <= 0x7E for c in sent), sent
    seconds = retry_after_s(retry, now=NOW)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER_S
