"""The HTTP connections under chat-bff: uvicorn's httptools protocol, plus the limits uvicorn
itself lacks.

uvicorn has no deadline for a request to arrive (a client dribbling header lines holds its
connection for ever), no limit on header size with httptools (a 16 MB header is read into
memory), and its close waits for the send buffer to drain, which a client that stopped
reading never lets happen. This module adds, per connection:

* a deadline for the request line and headers, and again for the body: past it, 408 (or,
  mid-body, the connection is dropped);
* a limit on the bytes of the request line and headers: past it, 431;
* a bounded close: a connection the server closed is aborted if it is still open after
  `close_grace_s` (its peer is not reading what was written);
* `scope["extensions"][ABORT_EXTENSION]`: a callable the app uses to drop its connection at
  once (an SSE stream whose client stopped reading), so that what the app counts per
  connection is released only when the socket is gone.

`chat-bff serve`, `demo` and `emulator` use it (`cli.py`); uvicorn embedded in Python takes it
as `http=GuardedHttpToolsProtocol` (default limits; uvicorn's command line offers only its own
protocols). It must not know the API: it sees bytes and connections, never routes or chats.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ABORT_EXTENSION = "chat_bff.abort"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 32_768
    close_grace_s: float = 10.0


class HeadersTooLargeError(Exception):
    """Raised inside the parser's callback to stop it; answered with 431."""


def _canned(status: int, reason: bytes) -> bytes:
    body = reason
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"cache-control: no-store\r\n",
            b"connection: close\r\n",
            b"content-length: %d\r\n\r\n" % len(body),
            body,
        ]
    )


REQUEST_TIMEOUT = _canned(408, b"Request Timeout")
HEADERS_TOO_LARGE = _canned(431, b"Request Header Fields Too Large")


class BoundedCloseTransport(asyncio.Transport):
    """The connection's transport, with a close that cannot linger: if the peer has not taken
    what is buffered within the grace period, the connection is aborted."""

    def __init__(self, transport: asyncio.Transport, grace_s: float) -> None:
        super().__init__()
        self._transport = transport
        self._grace_s = grace_s
        self._abort_timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self._transport.is_closing():
            return
        self._transport.close()
        if self._grace_s > 0:
            loop = asyncio.get_running_loop()
            self._abort_timer = loop.call_later(self._grace_s, self.abort)

    def closed(self) -> None:
        """The connection is gone: nothing left to abort."""
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None

    def abort(self) -> None:
        """Drop the connection now, and with it what the kernel still holds to send: a plain
        close (asyncio's abort included) leaves an orphaned socket in FIN_WAIT with its full
        send buffer for as long as the peer keeps its window shut. Zero linger resets it."""
        self.closed()
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()

    # Everything else is the real transport's.

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def write(self, data: bytes | bytearray | memoryview[int]) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request deadline, a header size limit, a bounded
    close and an abort handle for the app (see the module docstring)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    # Slots, not the instance dict: seven more keys grew uvicorn's per-connection dict to the
    # next size, 1.5 KiB for every idle stream.
    __slots__ = (
        "_bounded",
        "_deadline",
        "_head_bytes",
        "_head_size",
        "_lost",
        "_reading_head",
        "_refused",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True
        self._head_bytes = 0  # raw bytes received while the head is incomplete
        self._head_size = 0  # request line and header bytes the parser reported
        self._refused = False
        self._lost = False
        self._bounded: BoundedCloseTransport | None = None

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
        """This protocol with `limits`, as the class uvicorn's `http=` option takes."""
        return type(cls.__name__, (cls,), {"limits": limits})

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._bounded = BoundedCloseTransport(transport, self.limits.close_grace_s)
        super().connection_made(self._bounded)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._disarm()
        if self._bounded is not None:
            self._bounded.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            if self._deadline is None:
                self._arm()
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(HEADERS_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error with 400; ours, raised to stop the parser on
        # oversized headers, is a 431.
        if self._refused:
            self._refuse(HEADERS_TOO_LARGE)
            return
        super().send_400_response(msg)

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_size > self.limits.max_header_bytes:
            self._refused = True
            raise HeadersTooLargeError()
        # The body gets a deadline of its own.
        self._arm()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[ABORT_EXTENSION] = self.transport.abort
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0
        self._disarm()

    # -- deadlines ----------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._lost or self.transport.is_closing():
            return
        if not self._reading_head:
            # The head arrived but the body did not: the app is waiting on it; dropping the
            # connection tells it the client is gone.
            self.transport.abort()
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # The next request of a keep-alive connection started while a response (a
            # stream) is still going: its deadline starts once that one is done.
            self._arm()
            return
        self._refuse(REQUEST_TIMEOUT)

    def _refuse(self, answer: bytes) -> None:
        self._refused = True
        self._disarm()
        if self._lost or self.transport.is_closing():
            return
        self.transport.write(answer)
        self.transport.close()
