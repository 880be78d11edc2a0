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
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from app.bus._hub import LocalHub, LocalSubscription, check_chat, raise_if_cancelled
from app.bus._link import FAILURES, Barrier, Link
from app.bus._routing import ONE, Route, Router
from app.errors import BusUnavailableError

log = logging.getLogger("chat_bff.bus")


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
        self._links: dict[str, Link] = {}
        self._barriers: dict[str, Barrier] = {}
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
        raise_if_cancelled()
        self.start()
        sub, _ = self.hub.add(chat, active=False)
        try:
            await self._arm(sub)
            raise_if_cancelled()
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
                self._barriers[token] = Barrier([sub], [], future, link)
                await link.sync_quietly()
                await future
        except (TimeoutError, *FAILURES):
            raise BusUnavailableError() from None
        finally:
            self._barriers.pop(token, None)

    def _link_for(self, chat: str) -> Link:
        route = self.routes.get(chat)
        if route is None:
            route = self.routes[chat] = self.router.route(self._channel_of(chat))
        link = self._link(route)
        link.want[self._channel_of(chat)] = chat
        return link

    def _link(self, route: Route) -> Link:
        link = self._links.get(route.name)
        if link is None or link.retired:
            link = self._links[route.name] = Link(self, route)
            link.start()
        return link

    async def _forget(self, chat: str) -> None:
        route = self.routes.pop(chat, None)
        link = self._links.get(route.name) if route is not None else None
        if link is not None:
            link.want.pop(self._channel_of(chat), None)
            await link.sync_quietly()

    # -- barriers (called by links) -------------------------------------------------------

    def add_barrier(self, barrier: Barrier) -> None:
        self._barriers[f"r{next(self._tokens)}"] = barrier

    def barriers_of(self, link: Link) -> list[tuple[str, Barrier]]:
        return [(t, b) for t, b in self._barriers.items() if b.link is link]

    def drop_resyncs(self, link: Link) -> None:
        for token in [t for t, b in self._barriers.items() if b.link is link and not b.future]:
            del self._barriers[token]

    def finish(self, token: str, link: Link, gen: int) -> None:
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
        touched: set[Link] = set()
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
            self._link(ONE)
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
