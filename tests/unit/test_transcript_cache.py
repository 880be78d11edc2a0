"""The memory bus's bounded transcripts as plain data structures (`app/bus/_transcripts.py`):
a chat's log within its caps, and the process's budget over all logs. The buses' behaviour on
every topology is `tests/bus/test_contract.py`."""

from __future__ import annotations

import pytest

from app.bus._transcripts import ChatLog, LogBudget, text_bytes
from app.models import TranscriptEntry


def log_of(*sizes: int) -> ChatLog:
    log = ChatLog()
    for index, size in enumerate(sizes, start=1):
        log.append(index, "x" * size)
    return log


@pytest.mark.parametrize(
    ("sizes", "max_messages", "max_bytes", "dropped", "floor", "kept"),
    [
        ((10, 10, 10), 5, 100, 0, 0, [1, 2, 3]),  # within both caps
        ((10, 10, 10), 2, 100, 1, 1, [2, 3]),  # the message cap
        ((10, 10, 10), 5, 20, 1, 1, [2, 3]),  # the byte cap
        ((50, 10, 10), 5, 20, 1, 1, [2, 3]),  # a large old one goes first
        ((10, 10, 30), 5, 20, 3, 3, []),  # the newest alone over the cap: nothing kept
        ((10, 10, 10), 0, 100, 3, 3, []),
        ((), 2, 10, 0, 0, []),
    ],
)
def test_a_log_keeps_within_its_caps_dropping_the_oldest(
    sizes: tuple[int, ...],
    max_messages: int,
    max_bytes: int,
    dropped: int,
    floor: int,
    kept: list[int],
) -> None:
    log = log_of(*sizes)
    assert log.trim(max_messages, max_bytes) == dropped
    assert log.floor == floor
    assert [m.index for m in log.after(0, 100)] == kept
    assert log.nbytes == sum(sizes[i - 1] for i in kept)


def test_a_dropped_log_holds_nothing_up_to_its_cursor() -> None:
    log = log_of(5, 5, 5)
    assert log.drop() == 3
    assert (log.floor, log.nbytes, log.after(0, 10)) == (3, 0, [])
    log.append(4, "abc")
    assert log.after(0, 10) == [TranscriptEntry(4, raw="abc")]
    assert log.drop() == 1 and log.floor == 4


def test_text_bytes_are_utf8_bytes() -> None:
    assert text_bytes('"é"') == 4
    assert text_bytes("") == 0


def test_the_budget_drops_the_least_recently_committed_logs_first() -> None:
    budget = LogBudget(limit=100)
    budget.held("a", 40, used=True)
    budget.held("b", 40, used=True)
    budget.held("a", 45, used=True)  # a commit: `a` is now the most recent
    assert budget.total == 85 and budget.over() == []
    budget.held("c", 40, used=True)
    assert budget.total == 125
    assert budget.over() == ["b"]
    budget.held("b", 0, used=False)
    assert budget.total == 85 and budget.over() == []
    budget.held("a", 10, used=False)  # shrunk by its retention: keeps its place
    budget.held("d", 95, used=True)
    assert budget.over() == ["a", "c"]
