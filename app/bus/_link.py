"""One pub/sub connection of the fan-out (a "link"): what it carries, its barriers, and the
task that reads it and reconnects it.

Owns the wire side of fan-out: subscribing (SUBSCRIBE, or one SSUBSCRIBE per channel on a
Cluster), barriers (a PING whose PONG proves what came before it), decoding events, noticing a
slot that moved (an unsolicited SUNSUBSCRIBE, a MOVED answer) and a half-open connection (an
unanswered keepalive). The rules it serves are `_pubsub`'s; it must not decide routes, publish,
touch keys, or block on a subscriber (`_hub` buffers).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisClusterException, RedisError

from app.bus._hub import LocalHub, LocalSubscription
from app.bus._routing import Route, Router
from app.events import decode_events

log = logging.getLogger("chat_bff.bus")
# RedisClusterException (e.g. no node reachable) is not a RedisError.
FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


class LinkOwner(Protocol):
    """What a link needs of its fan-out (`_pubsub.PubSubFanOut`)."""

    hub: LocalHub
    router: Router
    routes: dict[str, Route]
    name: str
    op_timeout: float
    keepalive: float
    backoff: tuple[float, float]
    closed: bool

    def add_barrier(self, barrier: Barrier) -> None: ...

    def barriers_of(self, link: Link) -> list[tuple[str, Barrier]]: ...

    def drop_resyncs(self, link: Link) -> None: ...

    def finish(self, token: str, link: Link, gen: int) -> None: ...

    def topology_changed(self) -> None: ...


@dataclass(eq=False, slots=True)
class Barrier:
    """A PING on a link: its PONG proves every SUBSCRIBE sent before it is live and every
    message published before it has been read."""

    activate: list[LocalSubscription]  # subscribe: these go live
    resync: list[LocalSubscription]  # (re)subscribed channel: these may have missed events
    future: asyncio.Future[None] | None
    link: Link
    gen: int = -1  # the link's connection generation it was sent on


class Link:
    """One pub/sub connection: the channels it should carry (`want`), those it carries now
    (`on_conn`), and its reader task, which reconnects with backoff until retired."""

    def __init__(self, fanout: LinkOwner, route: Route) -> None:
        self.fanout = fanout
        self.route = route
        self.want: dict[str, str] = {}  # channel -> chat, as routed here
        self.on_conn: dict[str, str] = {}  # channel -> chat, subscribed on this connection
        self.lock = asyncio.Lock()  # orders every command sent on the connection
        self.ps: PubSub | None = None
        self.gen = 0
        self.broken = False
        self.retired = False
        self.task: asyncio.Task[None] | None = None
        self._leaving: Counter[str] = Counter()  # our own SUNSUBSCRIBEs not yet confirmed

    def start(self) -> None:
        if not self.retired and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(
                self._read_forever(), name=f"{self.fanout.name} {self.route.name}"
            )

    async def retire(self) -> None:
        self.retired = True
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def sync_quietly(self) -> None:
        async with self.lock:
            try:
                await self._sync()
            except FAILURES as exc:
                log.warning("pub/sub command failed (%r); reconnecting", exc)
                self.broken = True

    async def _sync(self) -> None:
        """Make the connection's subscriptions match `want`, then send every barrier not yet
        sent on this connection. The caller holds `lock`."""
        ps = self.ps
        if ps is None:
            return  # the reader's next connection calls this again
        fanout = self.fanout
        sharded = fanout.router.sharded
        if add := [channel for channel in self.want if channel not in self.on_conn]:
            missed: list[LocalSubscription] = []
            for channel in add:
                chat = self.on_conn[channel] = self.want[channel]
                missed += [s for s in fanout.hub.subscriptions(chat) if s.active]
            if sharded:
                # One SSUBSCRIBE per channel: one command may not span slots.
                for channel in add:
                    await ps.ssubscribe(channel)
            else:
                await ps.subscribe(*add)
            if missed:
                fanout.add_barrier(Barrier([], missed, None, self))
        if drop := [channel for channel in self.on_conn if channel not in self.want]:
            leave = []
            for channel in drop:
                chat = self.on_conn.pop(channel)
                # A channel that moved to another node is forgotten, not unsubscribed: that
                # node has unsubscribed us already or will (and would answer MOVED).
                if not sharded or chat not in fanout.routes:
                    leave.append(channel)
            for channel in leave:
                if sharded:
                    self._leaving[channel] += 1
                    await ps.sunsubscribe(channel)
            if leave and not sharded:
                await ps.unsubscribe(*leave)
        for token, barrier in fanout.barriers_of(self):
            if barrier.gen != self.gen:
                barrier.gen = self.gen
                await ps.ping(token)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind, data = msg.get("type"), msg.get("data")
        if kind in ("message", "smessage"):
            if not isinstance(data, bytes):
                return
            channel = bytes(msg.get("channel") or b"").decode()
            chat = self.on_conn.get(channel)
            route = self.fanout.routes.get(chat) if chat is not None else None
            if chat is None or route is None or route.name != self.route.name:
                return  # just unsubscribed, or moved to another link
            try:
                events = decode_events(data.decode())
            except (ValueError, KeyError, TypeError):
                log.warning("undecodable event payload on %s", channel)
                return
            self.fanout.hub.deliver(chat, events)
        elif kind == "pong" and isinstance(data, bytes):
            self.fanout.finish(data.decode(errors="replace"), self, self.gen)
        elif kind == "sunsubscribe":
            channel = bytes(msg.get("channel") or b"").decode()
            if self._leaving[channel] > 0:
                self._leaving[channel] -= 1
                if not self._leaving[channel]:
                    del self._leaving[channel]
            elif self.on_conn.pop(channel, None) is not None:
                # Not ours: the node no longer serves the channel's slot (resharding, or it
                # became a replica). Re-route; the new link resyncs the chat's subscribers.
                log.info("pub/sub: %s unsubscribed us from a moved slot", self.route.name)
                self.fanout.topology_changed()

    def _moved(self, error: MovedError) -> None:
        """A SSUBSCRIBE (or SUNSUBSCRIBE) reached a node that no longer owns the slot."""
        for channel in [c for c in self.on_conn if key_slot(c.encode()) == error.slot_id]:
            del self.on_conn[channel]
        self.fanout.topology_changed()

    def _on_reconnect(self, connection: AbstractConnection) -> None:
        # redis-py may quietly re-open a pub/sub connection; events may have been lost then,
        # so that connection is abandoned and the reader's own reconnect (with RESYNC) runs.
        self.broken = True

    async def _read_forever(self) -> None:
        fanout = self.fanout
        loop = asyncio.get_running_loop()
        low, high = fanout.backoff
        delay = low
        while not self.retired and not fanout.closed:
            client = ps = None
            live_since: float | None = None
            try:
                client = fanout.router.connect(self.route)
                ps = client.pubsub(ignore_subscribe_messages=False)
                async with asyncio.timeout(fanout.op_timeout):
                    await ps.connect()  # type: ignore[no-untyped-call]
                assert ps.connection is not None
                ps.connection.register_connect_callback(self._on_reconnect)
                async with self.lock:
                    self.ps, self.on_conn, self.broken = ps, {}, False
                    self._leaving.clear()
                    self.gen += 1
                    # Resyncs still unanswered from a lost connection are replaced by those of
                    # this one, which cover every subscriber live now.
                    fanout.drop_resyncs(self)
                    await self._sync()
                live_since = loop.time()
                await self._read(ps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub connection to %s lost (%r)", self.route.name, exc)
                fanout.topology_changed()
            finally:
                self.ps = None
                if ps is not None:
                    with suppress(Exception):
                        await ps.aclose()
                if client is not None:
                    with suppress(Exception):
                        await client.aclose()
            if self.retired or fanout.closed:
                return
            # Back to quick retries only after a connection that lasted: one that dies at once
            # (a server refusing us after connect) must not become a tight loop.
            if live_since is not None and loop.time() - live_since > 1.0:
                delay = low
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, high)

    async def _read(self, ps: PubSub) -> None:
        loop = asyncio.get_running_loop()
        keepalive, timeout = self.fanout.keepalive, self.fanout.op_timeout
        last_rx = last_ping = loop.time()
        tick = min(1.0, keepalive / 2)
        while not self.retired:
            try:
                msg = await ps.get_message(ignore_subscribe_messages=False, timeout=tick)
            except MovedError as error:
                if not self.fanout.router.sharded:
                    raise
                last_rx = loop.time()
                self._moved(error)
                continue
            now = loop.time()
            if self.broken:
                raise RedisConnectionError("pub/sub connection was re-opened underneath")
            if msg is not None:
                last_rx = now
                self._dispatch(msg)
            # A half-open connection never errors; an unanswered keepalive PING reveals it.
            if now - last_rx > keepalive + timeout:
                raise RedisConnectionError("pub/sub connection silent")
            if now - last_ping >= keepalive:
                last_ping = now
                async with self.lock:
                    await ps.ping("keepalive")
