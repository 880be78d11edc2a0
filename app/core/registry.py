"""The per-process registry of pollers: which chats this instance polls, and why.

Owns demand: interest from this instance's readers, streams and sends is noted on the bus
(fleet-wide), and so is the presence of readers (streams open here, long-polls waiting, recent
reads), which sets the poll schedule and tells the push hook whether anyone would see a
message. How long interest lasts is decided here: a read (or a RequestChat with a pushToken)
keeps the chat polled for the background keep-alive (an app in the background keeps its chat
alive upstream that long after its last read), unless the reading client already holds its
cap of such chats; a chat nobody has read (created, written to) only for the short grace, so
nobody keeps alive upstream what nobody looks at. A sweeper regularly offers this instance
every interested chat whose lease is free (so a dead holder is replaced within about one lease
period) and stops the pollers of chats nobody cares about any more. It owns every poller
task, restarts one that crashed (logged with its cause, `degraded` for viewers, backoff) and
ends them all on drain or close. Its sweeps, renewals and pollers keep time through the
`Clock` and `Random` it is handed (`app/clock.py`). It must not poll (that is `poller.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.bus.chats import Interest
from app.bus.fanout import Pokes
from app.bus.fleet import FleetStats
from app.bus.guards import Limits
from app.clock import SYSTEM_CLOCK, Clock, Random
from app.core.fleet_view import FleetView
from app.core.poller import ChatPoller, OnCommit, PollerBus, PollerTuning
from app.errors import BffError
from app.models import ChatRef, UpstreamStatus
from app.supervision import RESTARTS, Backoff, supervise
from app.upstream.client import UpstreamClient

log = logging.getLogger("chat_bff.registry")

# The per-client set of chats with the background keep-alive, on the bus (`Limits.admit`).
KEEPALIVE_LIMIT = "keepalive"
# How long a read counts as a present reader (the default of BFF_READER_WINDOW_S).
READER_WINDOW_S = 30.0


class RegistryBus(PollerBus, Interest, Pokes, Limits, FleetStats, Protocol):
    """What the registry uses of the bus: what its pollers use, plus interest and reader
    presence, pokes, the per-client keep-alive set (`Limits.admit`), the lease calls of the
    sweep and renewer, and the fleet's histograms (when it builds its own `FleetView`)."""


@dataclass(frozen=True, slots=True)
class Keepalive:
    """How long interest keeps a chat polled. `background_s` after a read (or RequestChat
    with a pushToken), for at most `per_client` chats per reading client at a time; beyond
    that, and for a chat nobody read, `unread_s`."""

    background_s: float
    unread_s: float
    per_client: int


class PollerRegistry:
    def __init__(
        self,
        *,
        upstream: UpstreamClient,
        bus: RegistryBus,
        resolve: Callable[[str], ChatRef],
        tuning: PollerTuning,
        keepalive: Keepalive,
        reader_window_s: float = READER_WINDOW_S,
        watched: Callable[[], dict[str, tuple[ChatRef, str]]] | None = None,
        on_change: Callable[[int], None] | None = None,
        on_commit: OnCommit | None = None,
        on_keepalive: Callable[[bool], None] | None = None,
        fleet: FleetView | None = None,
        restarts: Backoff = RESTARTS,
        clock: Clock = SYSTEM_CLOCK,
        rand: Random = random.random,
    ) -> None:
        """`restarts`: the delays before a crashed poller runs again (`app.supervision`)."""
        self._on_commit = on_commit
        self._restarts = restarts
        # The time, waits and jitter of the sweeps, renewals and pollers (a fake in tests).
        self._clock = clock
        self._rand = rand
        # The fleet's histograms, read for all of this instance's pollers at once.
        self._fleet = fleet if fleet is not None else FleetView(bus, clock=clock)
        self._watched = watched
        self._upstream = upstream
        self._bus = bus
        self._resolve = resolve
        self._tuning = tuning
        self._keepalive = keepalive
        self._reader_window_s = reader_window_s
        self._readers_until: dict[str, float] = {}
        self._on_change = on_change
        self._on_keepalive = on_keepalive
        self._pollers: dict[str, ChatPoller] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Until when this instance has noted interest in each chat on the bus.
        self._noted: dict[str, float] = {}
        # (chat, client) -> (when asked, admitted): the per-client keep-alive set, asked again
        # only now and then.
        self._admitted: dict[tuple[str, str], tuple[float, bool]] = {}
        self._attempted: dict[str, float] = {}
        # Chats found over: their viewers still show interest until they read the end, but
        # taking the lease again would only read the ended record and let it go, each sweep.
        self._over: dict[str, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.draining = False

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._pollers)

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="poller-sweeper")
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_loop(), name="lease-renewer")

    async def interest(
        self, ref: ChatRef, *, reader_s: float = 0.0, client: str | None = None
    ) -> None:
        """Someone here cares about the chat: keep it polled. With `client` (the client key of
        a reader, or of an app that gave a pushToken), for the background keep-alive if that
        client may keep one more chat alive; otherwise (a send, or the client at its cap) for
        the short grace. A longer interest noted earlier, anywhere, is never cut short.
        `reader_s` > 0: a reader is present for at least that long (a waiting long-poll: its
        wait plus the reader window), so the chat is polled as watched meanwhile."""
        key = ref.key
        now = self._clock.monotonic()
        grace = self._keepalive.unread_s
        if client is not None and await self._background(key, client, now):
            grace = self._keepalive.background_s
        # Throttled per chat: a busy chat's readers must not cost one bus write each.
        if self._noted.get(key, -1e9) < now + grace * 3 / 4:
            await self._bus.note_interest(key, ref.handle, grace)
            self._noted[key] = max(self._noted.get(key, -1e9), now + grace)
        if reader_s > 0:
            ttl = max(reader_s, self._reader_window_s)
            # Renewed once a third of the noted presence is used up, not on every read.
            noted_until = self._readers_until.get(key, -1e9)
            if noted_until < now + ttl * 2 / 3:
                await self._bus.note_reader(key, ttl)
                self._readers_until[key] = now + ttl
                if noted_until < now and (poller := self._pollers.get(key)) is not None:
                    # A reader arrives: a chat nobody watched waits a keep-alive gap for its
                    # next poll; poll now, and on the watched schedule from there. Only a
                    # poller here: a poke through the bus would reach every stream of the
                    # chat too, and RequestChat notes its reader for the first window anyway.
                    poller.poke()
        if key not in self._pollers and now - self._attempted.get(key, -1e9) > (
            self._tuning.lease_ttl_s / 3
        ):
            await self._try_acquire(key, ref)

    async def _background(self, key: str, client: str, now: float) -> bool:
        """Whether `client` may keep `key` alive in the background: one of the client's at
        most `per_client` such chats fleet-wide (asked of the bus now and then)."""
        asked, admitted = self._admitted.get((key, client), (-1e9, False))
        # A place is renewed a few times per keep-alive; a refusal is asked again soon.
        again = self._keepalive.background_s / 4 if admitted else self._keepalive.unread_s / 3
        if now - asked < again:
            return admitted
        admitted = await self._bus.admit(
            KEEPALIVE_LIMIT, client, key, self._keepalive.background_s, self._keepalive.per_client
        )
        self._admitted[(key, client)] = (now, admitted)
        if self._on_keepalive is not None:
            self._on_keepalive(admitted)
        if not admitted:
            log.info("background keep-alive refused: the client holds its cap of chats")
        return admitted

    async def poke(self, key: str) -> None:
        """Ask the chat's poller, wherever it runs, to poll now."""
        poller = self._pollers.get(key)
        if poller is not None:
            poller.poke()
        else:
            await self._bus.poke(key)

    async def _try_acquire(self, key: str, chat: ChatRef | str) -> None:
        """Poll `key` if its lease is free. `chat` is its identity, or the handle another
        instance noted interest with, opened (by the injected `resolve`) once the lease is
        ours."""
        if self.draining or key in self._pollers or key in self._over:
            return
        self._attempted[key] = self._clock.monotonic()
        fence = await self._bus.acquire(key, self._tuning.lease_ttl_s)
        if fence is None:
            return
        if self.draining or key in self._pollers:
            await self._bus.release(fence)
            return
        try:
            ref = self._resolve(chat) if isinstance(chat, str) else chat
        except BffError:
            ref = None
        if ref is None or ref.key != key:
            await self._bus.release(fence)
            return
        poller = ChatPoller(
            ref,
            fence,
            upstream=self._upstream,
            bus=self._bus,
            tuning=self._tuning,
            fleet=self._fleet,
            on_commit=self._on_commit,
            clock=self._clock,
            rand=self._rand,
        )
        task = asyncio.create_task(self._supervised(poller), name=f"poller:{key}")
        self._pollers[key] = poller
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._forget, key))
        self._changed()
        log.info("polling %s (epoch %d)", key, fence.epoch)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
            if self._pollers.pop(key).over:
                self._over[key] = self._clock.monotonic()
            self._changed()
        if not task.cancelled() and task.exception() is not None:
            log.error("poller of %s crashed", key, exc_info=task.exception())

    def _changed(self) -> None:
        if self._on_change:
            self._on_change(len(self._pollers))

    async def _renew_loop(self) -> None:
        """Every held lease renewed in one bus call per third of the ttl. A poller whose lease
        is gone stops without publishing; if the bus stays unreachable for a whole ttl, every
        lease has expired and every poller stops."""
        ttl = self._tuning.lease_ttl_s
        last_ok = self._clock.monotonic()
        while True:
            await self._clock.sleep(ttl / 3)
            pollers = list(self._pollers.values())
            try:
                held = await self._bus.renew([p.fence for p in pollers], ttl)
            except BffError as error:
                log.warning("lease renewal failed: %s", type(error).__name__)
                if self._clock.monotonic() - last_ok > ttl:
                    for poller in pollers:
                        poller.lease_lost()
                continue
            last_ok = self._clock.monotonic()
            for poller in pollers:
                if poller.fence not in held:
                    poller.lease_lost()

    async def _sweep_loop(self) -> None:
        period = self._tuning.lease_ttl_s / 2
        while not self.draining:
            await self._clock.sleep(period * (0.75 + self._rand() / 2))
            try:
                await self.sweep()
            except BffError as error:
                log.warning("sweep failed: %s", type(error).__name__)

    async def sweep(self) -> None:
        # Chats with streams open here stay interesting: refreshed once per chat, not per stream.
        for ref, client in (self._watched() if self._watched else {}).values():
            await self.interest(ref, reader_s=self._reader_window_s, client=client)
        interested = await self._bus.interested()
        now = self._clock.monotonic()
        for key, poller in list(self._pollers.items()):
            if key in interested:
                continue
            if (until := self._noted.get(key, -1e9)) > now:
                # Interest noted here but gone from the bus (Redis lost its data): restore it
                # rather than stop a chat someone is still watching.
                await self._bus.note_interest(key, poller.handle, until - now)
            else:
                poller.stop()
        recent = now - self._tuning.lease_ttl_s / 3
        for key, handle in interested.items():
            if self.draining:
                return
            if key not in self._pollers and self._attempted.get(key, -1e9) < recent:
                await self._try_acquire(key, handle)
        now = self._clock.monotonic()
        horizon = now - self._keepalive.background_s
        for table in (self._attempted, self._over):
            for key in [k for k, at in table.items() if at < horizon]:
                del table[key]
        for expiries in (self._noted, self._readers_until):
            for key in [k for k, at in expiries.items() if at < now]:
                del expiries[key]
        for pair in [p for p, (asked, _) in self._admitted.items() if asked < horizon]:
            del self._admitted[pair]

    async def drain(self) -> None:
        """Hand every chat over: stop polling and release the leases, so another instance
        takes over at its next sweep rather than after the leases expire."""
        self.draining = True
        for owned in (self._sweeper, self._renewer):
            if owned is not None:
                owned.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await owned
        for poller in list(self._pollers.values()):
            poller.stop()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- supervision: a poller that crashes is restarted, never silently lost ---------------

    async def _supervised(self, poller: ChatPoller) -> None:
        """Run `poller` until it ends of its own accord (chat over, stopped, lease lost).

        An unexpected exception in it is logged with its cause, shown to the chat's viewers as
        `degraded`, and the poller runs again after a backoff (its lease kept and renewed
        meanwhile, so no other instance takes over a chat for a bug and hits the same one):
        `app.supervision`, shared with the webhook delivery workers."""

        async def degraded(_: Exception) -> None:
            await self._degraded(poller)

        await supervise(
            poller.run,
            what=f"poller of {poller.target.key}",
            logger=log,
            backoff=self._restarts,
            on_crash=degraded,
            pause=poller.pause,
            clock=self._clock,
            rand=self._rand,
        )

    async def _degraded(self, poller: ChatPoller) -> None:
        try:
            published = await self._bus.commit(poller.fence, status=UpstreamStatus.DEGRADED)
        except BffError:
            return  # the bus is down too; the restarted poller will try again
        if published is None:
            poller.lease_lost()
