"""Request accounting of the simulated upstream: the counter, the bounded log, per-chat and
per-route tallies.

Owns only bookkeeping of what arrived under /api/v2. It must not decide how a request is
answered, and must not see control-API (/_emulator) traffic.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

_CHAT_PATH = re.compile(r"^/api/v2/chats/([^/]+)(/messages)?/?$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request received under /api/v2, as it arrived."""

    method: str
    path: str
    query: str
    chat_id: str | None
    headers: dict[str, str]
    """All headers received, names lower-cased (repeated headers joined)."""
    body: bytes
    at: float
    """time.monotonic() on arrival."""
    seq: int = 0
    """Sequence number: 1 for the first request ever, never reused (not even after a reset)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "chat_id": self.chat_id,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
            "at": self.at,
        }


def classify(method: str, path: str) -> tuple[str, str | None]:
    """The route key (e.g. "GET /chats/{id}/messages") and the chat id of an upstream path."""
    if path.rstrip("/") == "/api/v2/chats":
        return f"{method} /chats", None
    match = _CHAT_PATH.match(path)
    if match is None:
        return f"{method} other", None
    suffix = "/messages" if match.group(2) else ""
    return f"{method} /chats/{{id}}{suffix}", match.group(1)


def join_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict with lower-cased names; repeated headers are joined."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            separator = "; " if name == "cookie" else ", "
            headers[name] = headers[name] + separator + value
        else:
            headers[name] = value
    return headers


class RequestLog:
    """Counter, bounded log and tallies of upstream requests."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[RecordedRequest] = deque(maxlen=limit)
        self._seq = 0
        self.count = 0
        self.by_chat: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()

    def record(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, at: float
    ) -> RecordedRequest:
        route, chat_id = classify(method, path)
        self._seq += 1
        self.count += 1
        self.by_route[route] += 1
        if chat_id is not None:
            self.by_chat[chat_id] += 1
        entry = RecordedRequest(method, path, query, chat_id, headers, body, at, self._seq)
        self._entries.append(entry)
        return entry

    def attach_chat(self, seq: int, chat_id: str) -> None:
        """Credit a request (RequestChat) to the chat it created, once that chat exists."""
        self.by_chat[chat_id] += 1
        if not self._entries:
            return
        position = seq - self._entries[0].seq
        if 0 <= position < len(self._entries) and self._entries[position].seq == seq:
            self._entries[position] = replace(self._entries[position], chat_id=chat_id)

    def entries(self, since: int = 0) -> list[RecordedRequest]:
        """Logged requests with a sequence number greater than `since`, oldest first."""
        if since <= 0 or not self._entries:
            return list(self._entries)
        start = max(0, since + 1 - self._entries[0].seq)
        return list(islice(self._entries, start, None))

    @property
    def last_seq(self) -> int:
        return self._seq

    def reset(self) -> None:
        """Forget counts, tallies and the log; sequence numbers keep increasing."""
        self._entries.clear()
        self.count = 0
        self.by_chat.clear()
        self.by_route.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.count,
            "by_chat": dict(self.by_chat),
            "by_route": dict(self.by_route),
        }
