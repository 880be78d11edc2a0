"""Strict parameter parsing: ASCII digits, whole values, documented ranges, 400 otherwise."""

from __future__ import annotations

import pytest

from app.core.handles import HandleCodec
from app.errors import InvalidInputError
from app.routes.params import parse_index, parse_resume_point, parse_wait

NON_ASCII = ["²", "١٢", "\uff11", "\U0001d7d9", "1²", "٣"]
BAD_NUMBERS = [*NON_ASCII, "1\n", "\n1", " 1", "1 ", "+1", "-1", "0x1", "1_0"]


@pytest.mark.parametrize(("raw", "value"), [(None, None), ("0", 0), ("1", 1), ("007", 7)])
def test_index(raw: str | None, value: int | None) -> None:
    assert parse_index(raw) == value


@pytest.mark.parametrize("raw", [*BAD_NUMBERS, "", "1.5", "9999999999"])
def test_bad_index(raw: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_index(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (None, None),
        ("0", 0.0),
        ("25", 25.0),
        ("0.5", 0.5),
        ("30", 30.0),
        ("1e1", 10.0),
        ("1e-05", 1e-05),
        ("0.30000000000000004", 0.30000000000000004),
    ],
)
def test_wait(raw: str | None, value: float | None) -> None:
    assert parse_wait(raw, 30) == value


@pytest.mark.parametrize(
    "raw", [*BAD_NUMBERS, "", "31", "nan", "inf", "1e999", "1e2", ".5", "5.", "1e", "-0"]
)
def test_bad_wait(raw: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_wait(raw, 30)


@pytest.mark.parametrize(
    ("header", "query", "value"),
    [(None, None, 0), ("", None, 0), ("7", None, 7), (None, "9", 9), ("7", "9", 7)],
)
def test_resume_point(header: str | None, query: str | None, value: int) -> None:
    assert parse_resume_point(header, query) == value


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_bad_resume_point(raw: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_resume_point(raw, None)
    with pytest.raises(InvalidInputError):
        parse_resume_point(None, raw)
    with pytest.raises(InvalidInputError):
        parse_resume_point("7", raw)


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00", "=", "=="])
def test_a_handle_must_be_the_whole_string(suffix: str) -> None:
    codec = HandleCodec([b"k" * 32])
    handle = codec.seal("chat-1")
    assert codec.open(handle) == "chat-1"
    with pytest.raises(Exception, match="Chat not found"):
        codec.open(handle + suffix)
