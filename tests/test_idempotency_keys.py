"""Idempotency-Key syntax and request fingerprints, by table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.idempotency import MAX_KEY_CHARS, fingerprint_of, parse_key, slot_of


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        (b"8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        (b'"with space"', "with space"),
        (b'"esc \\" \\\\"', 'esc " \\'),
        (b"  padded\t", "padded"),
        (b'""', None),
        (b"", None),
        (b"a b", None),
        (b'"a\\b"', None),
        (b"a,b", None),
        (b"caf\xc3\xa9", None),
        (b"x" * MAX_KEY_CHARS, "x" * MAX_KEY_CHARS),
        (b"x" * (MAX_KEY_CHARS + 1), None),
    ],
)
def test_parse_key(raw: bytes, key: str | None) -> None:
    assert parse_key(raw) == key


def _scope(path: str = "/api/v2/chats/h", query: bytes = b"") -> dict[str, object]:
    return {"method": "POST", "path": path, "query_string": query}


def test_fingerprint_is_of_the_json_not_its_spelling() -> None:
    a = fingerprint_of(_scope(), b'{"operationName": "SendMessage", "text": "hi"}')
    b = fingerprint_of(_scope(), b'{"text":"hi","operationName":"SendMessage"}')
    assert a == b
    assert a != fingerprint_of(_scope(), b'{"text":"ho","operationName":"SendMessage"}')
    assert a != fingerprint_of(_scope("/api/v2/chats/other"), b'{"text":"hi"}')
    assert a != fingerprint_of(_scope(query=b"x=1"), b'{"operationName":"SendMessage","text":"hi"}')
    assert fingerprint_of(_scope(), b"not json") != fingerprint_of(_scope(), b"not json!")


def test_slots_are_per_path() -> None:
    assert slot_of("k", "/api/v2/chats/a") != slot_of("k", "/api/v2/chats/b")
    assert slot_of("k", "/api/v2/chats/a/") == slot_of("k", "/api/v2/chats/a")
    body = b'{"text":"hi"}'
    assert fingerprint_of(_scope("/api/v2/chats/a/"), body) == fingerprint_of(
        _scope("/api/v2/chats/a"), body
    )
    assert "{" not in slot_of("k{", "/p") and "}" not in slot_of("}", "/p")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_key_never_raises(raw: bytes) -> None:
    key = parse_key(raw)
    assert key is None or 1 <= len(key) <= MAX_KEY_CHARS
