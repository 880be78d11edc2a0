"""Idempotency-Key syntax, request fingerprints, client scoping and what is kept, by table."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.edge.idempotency_keys import (
    KEY_PATTERN,
    MAX_KEY_CHARS,
    KeyRefusedError,
    Retention,
    client_digest,
    fingerprint_of,
    kept_for,
    parse_key,
    slot_of,
)

UUID4 = "8e03978e-40d5-43e8-bc93-6894a57f9324"
# A time-based UUID, written out: test ids must be the same in every xdist worker.
UUID1 = "a3537d4e-f117-11f1-9b23-02fc00000001"
TOKEN22 = "Vx3_kQ9-aB7cD1eF2gH4iJ"  # 22 URL-safe characters: 132 bits if random


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (f'"{UUID4}"'.encode(), UUID4),
        (UUID4.encode(), UUID4),
        (UUID4.upper().encode(), UUID4.upper()),  # any version, any case
        (UUID1.encode(), UUID1),  # a v1 UUID is a key too
        (TOKEN22.encode(), TOKEN22),
        (f'"{TOKEN22}"'.encode(), TOKEN22),
        (f"  {TOKEN22}\t".encode(), TOKEN22),
        (b"x" * MAX_KEY_CHARS, "x" * MAX_KEY_CHARS),
    ],
)
def test_keys_with_128_bits_are_taken(raw: bytes, key: str) -> None:
    assert parse_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    [
        b"1",  # the key of the issue: anyone could guess it
        b"k-1234",
        TOKEN22[:-1].encode(),  # 21 characters: 126 bits at best
        f'"{TOKEN22[:-1]}"'.encode(),
        f"{{{UUID4}}}".encode(),  # braces are no part of the alphabet
        b'"with space in a long enough key"',
        b"with space in a long enough key",
        b"dots.are.not.in.the.alphabet.either",
        b'"unterminated' + TOKEN22.encode(),
        TOKEN22.encode() + b'"',
        b'""',
        b"",
        b"a,b" + TOKEN22.encode(),
        TOKEN22.encode() + b"\xc3\xa9",
        b"x" * (MAX_KEY_CHARS + 1),
    ],
)
def test_weak_or_malformed_keys_are_refused_with_the_rule(raw: bytes) -> None:
    with pytest.raises(KeyRefusedError) as refused:
        parse_key(raw)
    assert refused.value.http_status == 400
    assert "UUID or 22 to 255 characters" in refused.value.message


def test_the_openapi_pattern_says_the_same() -> None:
    pattern = re.compile(KEY_PATTERN.removeprefix("^").removesuffix("$"))
    for good in (UUID4, f'"{UUID4}"', TOKEN22):
        assert pattern.fullmatch(good)
    for bad in ("1", TOKEN22[:-1], f'"{TOKEN22}', f"{TOKEN22}\n"):
        assert not pattern.fullmatch(bad)


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


def test_clients_are_named_by_a_digest() -> None:
    assert client_digest("203.0.113.5") != client_digest("203.0.113.6")
    assert client_digest("203.0.113.5") == client_digest("203.0.113.5")
    assert "203" not in client_digest("203.0.113.5")
    assert all(c in "0123456789abcdef" for c in client_digest("2001:db8::/64"))


RETENTION = Retention(keep_s=3600, keep_error_s=60)


@pytest.mark.parametrize(
    ("status", "admitted", "kept"),
    [
        (200, True, 3600),
        (202, True, 3600),
        (200, False, 3600),  # a success is never forgotten, whatever the route said
        (400, True, 60),  # the upstream refused it once the limits passed: final, briefly
        (404, True, 60),
        (400, False, None),  # bad body before any limit: a retry gets it again by running
        (404, False, None),  # unknown handle
        (409, True, None),  # "not now", a completed chat: a state of the moment
        (409, False, None),  # "closed" (business hours), before the rate limit
        (429, True, None),
        (429, False, None),
        (500, True, None),
        (502, True, None),
        (503, True, None),
        (504, True, None),
    ],
)
def test_what_is_kept_and_how_long(status: int, admitted: bool, kept: float | None) -> None:
    assert kept_for(status, admitted=admitted, retention=RETENTION) == kept


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_key_refuses_or_returns_a_key(raw: bytes) -> None:
    try:
        key = parse_key(raw)
    except KeyRefusedError:
        return
    assert 22 <= len(key) <= MAX_KEY_CHARS
