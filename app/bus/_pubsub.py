"""Fan-out over Redis pub/sub: a few connections per bus ("links"), shared by every subscription.

Owns the links and the one task reading each. A plain or Sentinel bus has one link carrying
every chat with local subscribers (SUBSCRIBE; the commit script PUBLISHes). A Cluster bus has
one link per primary owning a subscribed chat's slot (SSUBSCRIBE; the commit script SPUBLISHes,
so an event goes to the chat's shard only, not to every node). A chat's channel
`<prefix>:{chat}:events` carries the chat's hash tag, so it lives on the node of its data.

The rules, the same on every topology:

* A chat's channel is subscribed when its first local subscriber arrives and unsubscribed when
  the last leaves.
* `subscribe` returns only once a PING sent after the SUBSCRIBE on the chat's link has come
  back (a barrier): the channel is then live and everything published before has been read,
  so exactly the events committed afterwards reach the subscriber.
* Whenever a channel is (re)subscribed on a connection while the chat has live subscribers (a
  reconnect, a failover, a slot that moved to another node), events may have been missed:
  once the new subscription is live, each of those subscribers gets one RESYNC.
* An event arriving on a link that no longer routes its chat is dropped: the RESYNC of the
  chat's new link covers it, and a late event from the old node must not follow newer ones.
* Cluster routing follows the command client's slot map. It is refreshed when a link's
  connection fails, when a node unsubscribes us (its slot moved away: Redis sends SUNSUBSCRIBE)
  or answers MOVED, and compared with our routes every keepalive period.

It must not publish, touch keys, or let a slow subscriber block a reader (`_hub` buffers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisClusterException, RedisError

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


# -- routing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where a channel is subscribed: a link's name and, on a Cluster, its node's address."""

    name: str
    host: str = ""
    port: int = 0


class Router(Protocol):
    """Which link carries a channel, and how to connect a link."""

    sharded: bool

    async def ready(self) -> None:
        """Load what `route` needs (a Cluster's slot map); idempotent."""
        ...

    def route(self, channel: str) -> Route: ...

    def current(self) -> frozenset[str]:
        """Names of the links routes may point to now; others are retired."""
        ...

    async def refresh(self) -> None:
        """Re-read the topology (after a failure, a SUNSUBSCRIBE or a MOVED)."""
        ...

    def connect(self, route: Route) -> Redis:
        """A fresh single-connection client for the link: RESP2, bytes, no retries."""
        ...


_ONE = Route("redis")


class SingleRouter:
    """One server (plain, or the master a Sentinel names): one link for every channel."""

    sharded = False

    def __init__(self, connect: Callable[[], Redis]) -> None:
        self._connect = connect

    async def ready(self) -> None:
        return None

    def route(self, channel: str) -> Route:
        return _ONE

    def current(self) -> frozenset[str]:
        return frozenset((_ONE.name,))

    async def refresh(self) -> None:
        return None

    def connect(self, route: Route) -> Redis:
        return self._connect()


class ClusterRouter:
    """A Redis Cluster: a channel is read on the primary owning its slot (sharded pub/sub)."""

    sharded = True

    def __init__(self, cluster: RedisCluster, connect: Callable[[str, int], Redis]) -> None:
        self._cluster = cluster
        self._connect = connect

    async def ready(self) -> None:
        await self._cluster.initialize()

    def route(self, channel: str) -> Route:
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        return Route(node.name, node.host, int(node.port))

    def current(self) -> frozenset[str]:
        nodes = self._cluster.nodes_manager.slots_cache.values()
        return frozenset(owners[0].name for owners in nodes if owners)

    async def refresh(self) -> None:
        await self._cluster.nodes_manager.initialize()

    def connect(self, route: Route) -> Redis:
        return self._connect(route.host, route.port)


# -- links --------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Barrier:
    """A PING on a link: its PONG proves every SUBSCRIBE sent before it is live and every
    message published before it has been read."""

    activate: list[LocalSubscription]  # subscribe: these go live
    resync: list[LocalSubscription]  # (re)subscribed channel: these may have missed events
    future: asyncio.Future[None] | None
    link: _Link
    gen: int = -1  # the link's connection generation it was sent on


class _Link:
    """One pub/sub connection: the channels it should carry (`want`), those it carries now
    (`on_conn`), and its reader task, which reconnects with backoff until retired."""

    def __init__(self, fanout: PubSubFanOut, route: Route) -> None:
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
                fanout.add_barrier(_Barrier([], missed, None, self))
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
                        await ps.aclose()  # type: ignore[no-untyped-call]
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


# -- the fan-out --------------------------------------------------------------------------


class PubSubFanOut:
    def __init__(
        self,
        router: Router,
        channel_of: Callable[[str], str],
        *,
        buffer: int,
        op_timeout_s: float,
        wait_s: float,
        keepalive_s: float,
        backoff: tuple[float, float],
        name: str,
    ) -> None:
        self.hub = LocalHub(buffer)
        self.router = router
        self.name = name
        self.op_timeout = op_timeout_s
        self.keepalive = keepalive_s
        self.backoff = backoff
        self._channel_of = channel_of
        self._wait = max(op_timeout_s, wait_s)  # how long `subscribe` may wait for Redis
        self.routes: dict[str, Route] = {}  # chat -> its link, for chats with local subscribers
        self._links: dict[str, _Link] = {}
        self._barriers: dict[str, _Barrier] = {}
        self._tokens = itertools.count(1)
        self._stale: asyncio.Event | None = None
        self._router_task: asyncio.Task[None] | None = None
        self.closed = False

    # -- subscriptions --------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, chat: str) -> AsyncIterator[LocalSubscription]:
        check_chat(chat)
        if self.closed:
            raise RuntimeError("bus closed")
        self.start()
        sub, _ = self.hub.add(chat, active=False)
        try:
            await self._arm(sub)
            yield sub
        finally:
            if self.hub.remove(sub):
                await self._forget(chat)

    async def _arm(self, sub: LocalSubscription) -> None:
        """Return once `sub` is live: its channel subscribed and earlier messages drained."""
        token = f"b{next(self._tokens)}"
        future = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._wait):
                await self.router.ready()
                link = self._link_for(sub.chat)
                self._barriers[token] = _Barrier([sub], [], future, link)
                await link.sync_quietly()
                await future
        except (TimeoutError, *FAILURES):
            raise BusUnavailableError() from None
        finally:
            self._barriers.pop(token, None)

    def _link_for(self, chat: str) -> _Link:
        route = self.routes.get(chat)
        if route is None:
            route = self.routes[chat] = self.router.route(self._channel_of(chat))
        link = self._link(route)
        link.want[self._channel_of(chat)] = chat
        return link

    def _link(self, route: Route) -> _Link:
        link = self._links.get(route.name)
        if link is None or link.retired:
            link = self._links[route.name] = _Link(self, route)
            link.start()
        return link

    async def _forget(self, chat: str) -> None:
        route = self.routes.pop(chat, None)
        link = self._links.get(route.name) if route is not None else None
        if link is not None:
            link.want.pop(self._channel_of(chat), None)
            await link.sync_quietly()

    # -- barriers (called by links) -------------------------------------------------------

    def add_barrier(self, barrier: _Barrier) -> None:
        self._barriers[f"r{next(self._tokens)}"] = barrier

    def barriers_of(self, link: _Link) -> list[tuple[str, _Barrier]]:
        return [(t, b) for t, b in self._barriers.items() if b.link is link]

    def drop_resyncs(self, link: _Link) -> None:
        for token in [t for t, b in self._barriers.items() if b.link is link and not b.future]:
            del self._barriers[token]

    def finish(self, token: str, link: _Link, gen: int) -> None:
        barrier = self._barriers.get(token)
        if barrier is None or barrier.link is not link or barrier.gen != gen:
            return  # answered on a connection or link it no longer belongs to
        del self._barriers[token]
        for sub in barrier.activate:
            sub.active = True
        for sub in barrier.resync:
            sub.resync()
        if barrier.future is not None and not barrier.future.done():
            barrier.future.set_result(None)

    # -- topology -------------------------------------------------------------------------

    def topology_changed(self) -> None:
        """A link saw the topology move: refresh it and re-route (Cluster only)."""
        if self._stale is not None:
            self._stale.set()

    async def _route_forever(self) -> None:
        """Cluster: re-route chats whose slot moved. Refreshes the slot map when asked, and
        otherwise compares routes with the client's map (which MOVED answers to commands
        update) every keepalive period."""
        assert self._stale is not None
        low, high = self.backoff
        delay = low
        while not self.closed:
            refresh = False
            with suppress(TimeoutError):
                async with asyncio.timeout(self.keepalive):
                    await self._stale.wait()
                    refresh = True
            self._stale.clear()
            if refresh:
                try:
                    async with asyncio.timeout(self.op_timeout):
                        await self.router.refresh()
                    delay = low
                except FAILURES as exc:
                    log.info("cluster topology refresh failed (%r)", exc)
                    self._stale.set()
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, high)
            await self._reroute()
            await asyncio.sleep(low)  # coalesces a burst of notices into one refresh

    async def _reroute(self) -> None:
        touched: set[_Link] = set()
        for chat, old in list(self.routes.items()):
            channel = self._channel_of(chat)
            try:
                new = self.router.route(channel)
            except FAILURES:
                continue  # slot not covered for now: keep the old route, check again later
            current_link = self._links.get(old.name)
            if new.name == old.name and current_link is not None and not current_link.retired:
                continue
            self.routes[chat] = new
            before = self._links.get(old.name)
            if before is not None:
                before.want.pop(channel, None)
                touched.add(before)
            after = self._link(new)
            after.want[channel] = chat
            touched.add(after)
            # A subscribe still waiting for its barrier on the old link waits on the new one.
            for barrier in self._barriers.values():
                moving = barrier.future is not None and barrier.link is before
                if moving and any(s.chat == chat for s in barrier.activate):
                    barrier.link, barrier.gen = after, -1
        for link in touched:
            await link.sync_quietly()
        current = self.router.current()
        for name, link in list(self._links.items()):
            if name not in current and not link.want:
                del self._links[name]
                self.drop_resyncs(link)
                await link.retire()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the readers (idempotent): the single link at once, a Cluster's router."""
        if self.closed:
            return
        if not self.router.sharded:
            self._link(_ONE)
        elif self._router_task is None or self._router_task.done():
            self._stale = asyncio.Event()
            self._router_task = asyncio.get_running_loop().create_task(
                self._route_forever(), name=f"{self.name} router"
            )

    async def aclose(self) -> None:
        self.closed = True
        task, self._router_task = self._router_task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        for link in list(self._links.values()):
            await link.retire()
        self._links.clear()
        self.hub.close_all()
        for barrier in self._barriers.values():
            if barrier.future is not None:
                barrier.future.cancel()
        self._barriers.clear()
