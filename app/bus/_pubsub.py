"""Fan-out over Redis pub/sub: ONE pub/sub connection per bus, shared by every subscription.

Owns that connection and the one task that reads it. A chat's channel is SUBSCRIBEd when its
first local subscriber arrives and UNSUBSCRIBEd when the last leaves. `subscribe` returns only
once a PING sent after the SUBSCRIBE has come back (a barrier): the channel is then live and
everything published before has been read, so exactly the events committed afterwards reach
the subscriber. On connection loss the reader reconnects with backoff and jitter, resubscribes
every channel and, once that is live, pushes one RESYNC to every subscriber that was live.
It must not publish, touch keys, or let a slow subscriber block the reader (`_hub` buffers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from app.bus._hub import LocalHub, LocalSubscription, check_chat
from app.errors import BusUnavailableError
from app.models import ChatEvent, EventKind

log = logging.getLogger("chat_bff.bus")
# RedisClusterException (e.g. no node reachable) is not a RedisError.
FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


def decode_events(payload: str) -> list[ChatEvent]:
    return [
        ChatEvent(EventKind(e["k"]), e.get("d") or {}, index=e.get("i"), prev=e.get("p"))
        for e in json.loads(payload)
    ]


@dataclass(eq=False, slots=True)
class _Barrier:
    """A PING on the pub/sub connection: its PONG proves every SUBSCRIBE sent before it is live
    and every message published before it has been read."""

    activate: list[LocalSubscription]  # subscribe: these go live
    resync: list[LocalSubscription]  # reconnect: these may have missed events
    future: asyncio.Future[None] | None
    gen: int = -1  # connection generation it was sent on


class PubSubFanOut:
    def __init__(
        self,
        connect: Callable[[], Awaitable[Redis]],
        channel_of: Callable[[str], str],
        *,
        buffer: int,
        op_timeout_s: float,
        keepalive_s: float,
        backoff: tuple[float, float],
        name: str,
    ) -> None:
        self.hub = LocalHub(buffer)
        self._connect = connect  # a fresh single-connection client, RESP2, bytes, no retries
        self._channel_of = channel_of
        self._timeout = op_timeout_s
        self._keepalive = keepalive_s
        self._backoff = backoff
        self._name = name
        self._lock = asyncio.Lock()  # orders every command sent on the connection
        self._ps: PubSub | None = None
        self._gen = 0
        self._on_conn: dict[str, str] = {}  # channel -> chat, as subscribed on this connection
        self._barriers: dict[str, _Barrier] = {}
        self._tokens = itertools.count(1)
        self._broken = False
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    @asynccontextmanager
    async def subscribe(self, chat: str) -> AsyncIterator[LocalSubscription]:
        check_chat(chat)
        if self._closed:
            raise RuntimeError("bus closed")
        self.start()
        sub, _ = self.hub.add(chat, active=False)
        try:
            await self._arm(sub)
            yield sub
        finally:
            if self.hub.remove(sub):
                await self._sync_quietly()

    async def _arm(self, sub: LocalSubscription) -> None:
        """Return once `sub` is live: its channel subscribed and earlier messages drained."""
        token = f"b{next(self._tokens)}"
        future = asyncio.get_running_loop().create_future()
        self._barriers[token] = _Barrier([sub], [], future)
        try:
            await self._sync_quietly()
            async with asyncio.timeout(self._timeout):
                await future
        except TimeoutError:
            raise BusUnavailableError() from None
        finally:
            self._barriers.pop(token, None)

    async def _sync_quietly(self) -> None:
        async with self._lock:
            try:
                await self._sync()
            except FAILURES as exc:
                log.warning("pub/sub command failed (%r); reconnecting", exc)
                self._broken = True

    async def _sync(self) -> None:
        """Make the connection's subscriptions match the local subscribers, then send every
        barrier not yet sent on this connection. The caller holds `_lock`."""
        ps = self._ps
        if ps is None:
            return  # the reader's next connection calls this again
        want = {self._channel_of(chat): chat for chat in self.hub.chats()}
        if add := sorted(set(want) - set(self._on_conn)):
            self._on_conn.update((channel, want[channel]) for channel in add)
            await ps.subscribe(*add)
        if drop := sorted(set(self._on_conn) - set(want)):
            for channel in drop:
                del self._on_conn[channel]
            await ps.unsubscribe(*drop)
        for token, barrier in list(self._barriers.items()):
            if barrier.gen != self._gen:
                barrier.gen = self._gen
                await ps.ping(token)

    def _finish(self, token: str) -> None:
        barrier = self._barriers.pop(token, None)
        if barrier is None:
            return
        for sub in barrier.activate:
            sub.active = True
        for sub in barrier.resync:
            sub.resync()
        if barrier.future is not None and not barrier.future.done():
            barrier.future.set_result(None)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind, data = msg.get("type"), msg.get("data")
        if not isinstance(data, bytes):
            return
        if kind == "message":
            channel = bytes(msg.get("channel") or b"").decode()
            chat = self._on_conn.get(channel)
            if chat is None:
                return  # just unsubscribed
            try:
                events = decode_events(data.decode())
            except (ValueError, KeyError, TypeError):
                log.warning("undecodable event payload on %s", channel)
                return
            self.hub.deliver(chat, events)
        elif kind == "pong":
            self._finish(data.decode(errors="replace"))

    def _on_reconnect(self, connection: AbstractConnection) -> None:
        # redis-py may quietly re-open a pub/sub connection; events may have been lost then,
        # so that connection is abandoned and the reader's own reconnect (with RESYNC) runs.
        self._broken = True

    def start(self) -> None:
        """Start the reader (idempotent)."""
        if not self._closed and (self._reader is None or self._reader.done()):
            self._reader = asyncio.get_running_loop().create_task(
                self._read_forever(), name=self._name
            )

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff[0]
        while not self._closed:
            client = ps = None
            live_since: float | None = None
            try:
                client = await self._connect()
                ps = client.pubsub(ignore_subscribe_messages=True)
                async with asyncio.timeout(self._timeout):
                    await ps.connect()  # type: ignore[no-untyped-call]
                assert ps.connection is not None
                ps.connection.register_connect_callback(self._on_reconnect)
                async with self._lock:
                    self._ps, self._on_conn, self._broken = ps, {}, False
                    self._gen += 1
                    # A resync still unanswered from a lost connection is replaced by this
                    # one, which covers every subscriber live now.
                    for token in [t for t, b in self._barriers.items() if b.future is None]:
                        del self._barriers[token]
                    if live := self.hub.active():
                        self._barriers[f"r{next(self._tokens)}"] = _Barrier([], live, None)
                    await self._sync()
                live_since = loop.time()
                await self._read(ps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub connection lost (%r); reconnecting", exc)
            finally:
                self._ps = None
                if ps is not None:
                    with suppress(Exception):
                        await ps.aclose()  # type: ignore[no-untyped-call]
                if client is not None:
                    with suppress(Exception):
                        await client.aclose()
            if self._closed:
                return
            # Back to quick retries only after a connection that lasted: one that dies at once
            # (a server refusing us after connect) must not become a tight loop.
            if live_since is not None and loop.time() - live_since > 1.0:
                delay = self._backoff[0]
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self._backoff[1])

    async def _read(self, ps: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_rx = last_ping = loop.time()
        tick = min(1.0, self._keepalive / 2)
        while not self._closed:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=tick)
            now = loop.time()
            if self._broken:
                raise RedisConnectionError("pub/sub connection was re-opened underneath")
            if msg is not None:
                last_rx = now
                self._dispatch(msg)
            # A half-open connection never errors; an unanswered keepalive PING reveals it.
            if now - last_rx > self._keepalive + self._timeout:
                raise RedisConnectionError("pub/sub connection silent")
            if now - last_ping >= self._keepalive:
                last_ping = now
                async with self._lock:
                    await ps.ping("keepalive")

    async def aclose(self) -> None:
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader
        self.hub.close_all()
        for barrier in self._barriers.values():
            if barrier.future is not None:
                barrier.future.cancel()
        self._barriers.clear()
