"""A hostile upstream for tests: a raw HTTP/1.1 server on a loopback port that answers the
Customer Chat API's routes with whatever bytes a test sets, headers included.

The built-in emulator speaks through uvicorn, which refuses to send what a broken upstream
may send (control characters in headers, bodies that are not UTF-8, lone surrogates in JSON,
answers of any size). This server writes the status line, headers and body a test hands it,
byte for byte. Between faults it behaves like a minimal upstream (chats, a transcript, sends)
so a chat-bff in front of it can create chats and poll them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ROUTES = ("create", "chat", "messages", "send")


@dataclass(frozen=True)
class Raw:
    """One answer, exactly as it goes on the wire (Content-Length is added for the body)."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", b"application/json"),)
    reason: bytes = b"OK"

    @classmethod
    def json_text(cls, text: str, status: int = 200, **extra: bytes) -> Raw:
        """`text` as the body, encoded with surrogates passed through as UTF-8 would not."""
        headers = ((b"Content-Type", b"application/json"), *_headers(extra))
        return cls(status, text.encode("utf-8", "surrogatepass"), headers)


def _headers(extra: dict[str, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.replace("_", "-").encode(), v) for k, v in extra.items())


@dataclass
class _Chat:
    messages: list[dict[str, Any]] = field(default_factory=list)


def _route(method: str, path: str) -> tuple[str | None, str | None]:
    if method == "POST" and path == "/api/v2/chats":
        return "create", None
    match = re.fullmatch(r"/api/v2/chats/([^/]+)(/messages)?", path)
    if match is None:
        return None, None
    chat_id = match.group(1)
    if match.group(2):
        return ("messages" if method == "GET" else None), chat_id
    return {"GET": "chat", "POST": "send"}.get(method), chat_id


class HostileUpstream:
    """Start with `start()`; `set(route, Raw(...))` makes every answer of that route that one
    (`times=N`: only the next N), `clear()` goes back to behaving."""

    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self.counts: Counter[str] = Counter()
        self.last_head: dict[str, bytes] = {}
        self._faults: dict[str, tuple[Raw, int | None]] = {}
        self._chats: dict[str, _Chat] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    # -- control (called from the test's thread) ----------------------------------------

    def set(self, route: str, answer: Raw, *, times: int | None = None) -> None:
        assert route in ROUTES, route
        with self._lock:
            self._faults[route] = (answer, times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def say(self, chat_id: str, text: str, index: int | None = None) -> int:
        """The agent writes `text` into the chat's transcript (at `index`, default the next);
        returns its index."""
        with self._lock:
            chat = self._chats.setdefault(chat_id, _Chat())
            index = index or len(chat.messages) + 1
            chat.messages.append(
                {
                    "index": index,
                    "type": "Text",
                    "text": text,
                    "from": {"nickname": "Kim", "participantId": 2, "type": "Agent"},
                }
            )
            return index

    def count(self, route: str) -> int:
        with self._lock:
            return self.counts[route]

    @property
    def chat_ids(self) -> list[str]:
        with self._lock:
            return list(self._chats)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> HostileUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="hostile-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- the server ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            path, _, query = target.partition("?")
            answer = self._answer(method, path, query, body, head)
            out = [b"HTTP/1.1 %d %s\r\n" % (answer.status, answer.reason)]
            out += [name + b": " + value + b"\r\n" for name, value in answer.headers]
            out.append(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(answer.body))
            writer.write(b"".join(out))
            writer.write(answer.body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def _answer(self, method: str, path: str, query: str, body: bytes, head: bytes) -> Raw:
        route, chat_id = _route(method, path)
        with self._lock:
            if route is None:
                return Raw(404, b"Not found", ((b"Content-Type", b"text/plain"),), b"Not Found")
            self.counts[route] += 1
            self.last_head[route] = head
            fault = self._faults.get(route)
            if fault is not None:
                answer, times = fault
                if times is not None:
                    if times <= 1:
                        del self._faults[route]
                    else:
                        self._faults[route] = (answer, times - 1)
                return answer
            return self._behave(route, chat_id, query, body)

    def _behave(self, route: str, chat_id: str | None, query: str, body: bytes) -> Raw:
        if route == "create":
            new_id = f"hostile-{next(self._ids)}"
            self._chats[new_id] = _Chat()
            return _ok({"id": new_id, "path": f"/api/v2/chats/{new_id}"})
        assert chat_id is not None
        chat = self._chats.get(chat_id)
        if chat is None:
            return Raw(400, b"Chat not found", ((b"Content-Type", b"text/plain"),), b"Bad")
        if route == "chat":
            return _ok(
                {
                    "chat": {
                        "id": chat_id,
                        "state": "Chatting",
                        "capabilities": ["SendMessage", "Complete"],
                        "participants": [
                            {"nickname": "Kim", "participantId": "2", "type": "Agent"},
                            {"nickname": "Chris", "participantId": "1", "type": "Customer"},
                        ],
                    }
                }
            )
        if route == "messages":
            match = re.search(r"(?:^|&)index=(\d+)", query)
            start = int(match.group(1)) if match else 1
            return _ok({"messages": [m for m in chat.messages if m["index"] >= start]})
        payload = json.loads(body or b"{}")
        if payload.get("operationName") == "SendMessage":
            index = len(chat.messages) + 1
            chat.messages.append(
                {
                    "index": index,
                    "type": "Text",
                    "text": payload.get("text", ""),
                    "from": {"nickname": "Chris", "participantId": 1, "type": "Customer"},
                }
            )
        return _ok({})


def _ok(payload: dict[str, Any]) -> Raw:
    return Raw(body=json.dumps({**payload, "statusCode": 0}).encode())
