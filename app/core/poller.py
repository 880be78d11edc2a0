"""The shared poller: one loop per chat whose lease this process holds.

Owns one chat's poll cycle: read new messages with an explicit index, read the chat resource
only when needed, commit both through the fenced bus, renew the lease, back off on failures.
It must not parse upstream answers (`app/upstream/`), choose delays (`schedule.py`) or decide
which chats to poll (`registry.py`). It keeps the chat's `Turn` and read budget (`Spend`) for
the schedule, and reports what it observed (reply and join times) to the fleet's histograms
(`fleet_view.py`). It reads the time, waits and draws its jitter only through the `Clock` and
`Random` it is handed (`app/clock.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.bus.chats import ChatCache, Fence, Lease
from app.bus.fanout import FanOut
from app.clock import SYSTEM_CLOCK, Clock, Random
from app.core.fleet_view import FleetView
from app.core.schedule import Budget, fresh_spend, next_delay, quiet_after_s, spend
from app.core.turn import Turn, next_turn
from app.errors import BffError, BusUnavailableError, ChatNotFoundError
from app.events import ChatEvent, EventKind
from app.models import ChatRef, ChatState, UpstreamStatus
from app.upstream.client import Answer, UpstreamClient
from app.upstream.transcript import after_cursor, ended_state, is_ended, needs_state_refresh

log = logging.getLogger("chat_bff.poller")

# Called after each successful fenced commit with the events it published (the push hook).
OnCommit = Callable[[Fence, Sequence[ChatEvent]], Awaitable[None]]

POKE_COALESCE_S = 0.02
WAITING_FOR_AGENT = "WaitingForAgent"


class PollerBus(Lease, ChatCache, FanOut, Protocol):
    """What a poller uses of the bus: its lease (released when it stops), the chat's shared
    copy (read, and written through the fenced commit) and the chat's fan-out (pokes)."""


@dataclass(frozen=True, slots=True)
class PollerTuning:
    budget: Budget
    lease_ttl_s: float = 3.0
    state_refresh_s: float = 30.0


class ChatPoller:
    """Polls one chat while it holds `fence` (renewed by the registry, for all chats at once);
    stops when the chat ends, the lease is lost, or `stop()` is called. Every task it starts
    is cancelled before `run()` returns."""

    def __init__(
        self,
        target: ChatRef,
        fence: Fence,
        *,
        upstream: UpstreamClient,
        bus: PollerBus,
        tuning: PollerTuning,
        on_poll: Callable[[], None] | None = None,
        fleet: FleetView,
        on_commit: OnCommit | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rand: Random = random.random,
    ) -> None:
        self._on_commit = on_commit
        # Every wait and reading of the time goes through these (tests run them on a fake).
        self._clock = clock
        self._rand = rand
        self._fleet = fleet
        self.target = target
        self.fence = fence
        self._upstream = upstream
        self._bus = bus
        self._tuning = tuning
        self._on_poll = on_poll
        self._wake = asyncio.Event()
        self._stopping = False
        self._release = True
        self._poke_pending = False
        self.over = False  # the chat ended: nobody need poll it again

    @property
    def handle(self) -> str:
        return self.target.handle

    def poke(self) -> None:
        """Poll very soon (the customer sent something: their viewers wait for its echo).
        Pokes within `POKE_COALESCE_S` share one poll, and the poll runs after the request
        that poked has been answered."""
        if not self._poke_pending:
            self._poke_pending = True
            self._clock.call_later(POKE_COALESCE_S, self._poked)

    def _poked(self) -> None:
        self._poke_pending = False
        self._wake.set()

    def stop(self, *, release: bool = True) -> None:
        self._stopping = True
        self._release = release
        self._wake.set()

    def lease_lost(self) -> None:
        """The registry's renewal found the lease gone: stop without publishing or releasing
        (a commit in flight is refused by its fence anyway)."""
        log.info("lease of %s lost to another holder", self.target.key)
        self.stop(release=False)

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._poll_loop(), name=f"poll:{self.target.key}"),
            asyncio.create_task(self._listen(), name=f"pokes:{self.target.key}"),
        ]
        try:
            await asyncio.wait(tasks[:1])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._release and not _crashed(tasks[0]):
                with contextlib.suppress(BffError, OSError):
                    await self._bus.release(self.fence)
        # A crash of the poll loop is re-raised for the registry's supervisor, with the lease
        # kept so that the restarted loop continues under the same fence.
        tasks[0].result()

    async def _listen(self) -> None:
        # Pokes come from whichever instance took the customer's send.
        while True:
            try:
                async with self._bus.subscribe(self.target.key) as subscription:
                    async for event in subscription:
                        if event.kind is EventKind.POKE:
                            self.poke()
            except BffError:
                await self._clock.sleep(self._tuning.lease_ttl_s / 3)

    async def _keep(self, answer: Answer, known: dict[str, str]) -> None:
        # Some load balancers set the same cookie on every answer: store only what changed.
        changed = {k: v for k, v in answer.cookies.items() if known.get(k, "") != v}
        if changed:
            await self._bus.set_cookies(self.target.key, changed)
            known.update(changed)

    def _state_due(self, now: float, last_state_at: float, last_activity: float) -> bool:
        """The periodic state read, only once the chat has gone quiet: while messages flow,
        state changes arrive as participant events, and a chat that ends upstream without one
        stops talking, so it is caught one quiet window later. A lively chat thus costs
        exactly one upstream request per poll."""
        quiet = now - last_activity >= quiet_after_s(self._tuning.budget)
        return quiet and now - last_state_at >= self._tuning.state_refresh_s

    async def _poll_loop(self) -> None:
        key, upstream_id = self.target.key, self.target.upstream_id
        record = await self._bus.record(key)
        if record.ended:
            self.over = True
            return
        cursor, state, status = record.cursor, record.state, record.status
        last_state_at = -1e9
        last_activity = self._clock.monotonic()
        failures, retry_after = 0, None
        budget = self._tuning.budget
        # Whose move it is, from the end of the transcript a previous holder stored.
        turn, _ = next_turn(
            Turn(),
            await self._bus.messages(key, after=max(0, cursor - 20)),
            now=last_activity,
            previous_poll=None,
            waiting=state is not None and state.state == WAITING_FOR_AGENT,
        )
        spent = fresh_spend(budget, last_activity)
        previous_poll: float | None = None
        while not self._stopping:
            self._wake.clear()
            started = self._clock.monotonic()
            try:
                record = await self._bus.record(key)
                if self._on_poll:
                    self._on_poll()
                messages, answer = await self._upstream.get_messages(
                    upstream_id, cursor + 1, record.cookies
                )
                await self._keep(answer, record.cookies)
                new = after_cursor(messages, cursor)
                now = self._clock.monotonic()
                new_state: ChatState | None = None
                if (
                    state is None
                    or record.completed
                    or needs_state_refresh(new)
                    or self._state_due(now, last_state_at, last_activity)
                ):
                    spent = spend(spent, budget, now)
                    fetched, answer = await self._upstream.get_chat(upstream_id, record.cookies)
                    await self._keep(answer, record.cookies)
                    last_state_at = now
                    if record.completed:
                        fetched = ended_state(fetched)
                    if fetched != state:
                        new_state = fetched
                ended = is_ended(new_state or state, completed=record.completed)
                events = await self._bus.commit(
                    self.fence,
                    new,
                    state=new_state,
                    status=UpstreamStatus.OK if status is not UpstreamStatus.OK else None,
                    ended=ended,
                )
                if events is None:
                    self._release = False
                    return
                if self._on_commit is not None:
                    await self._on_commit(self.fence, events)
                if new:
                    cursor, last_activity = new[-1].index, now
                state, status = new_state or state, UpstreamStatus.OK
                turn, observed = next_turn(
                    turn,
                    new,
                    now=now,
                    previous_poll=previous_poll,
                    waiting=state is not None and state.state == WAITING_FOR_AGENT,
                )
                previous_poll = now
                await self._fleet.observe(observed)
                failures, retry_after = 0, None
                if ended:
                    self.over = True
                    return
            except ChatNotFoundError:
                # The upstream no longer knows the chat: it is over for everyone.
                gone = ChatState("Idle") if state is not None else None
                events = await self._bus.commit(self.fence, state=gone, ended=True)
                self.over = events is not None
                if events is not None and self._on_commit is not None:
                    await self._on_commit(self.fence, events)
                return
            except BffError as error:
                failures += 1
                retry_after = error.retry_after_s
                log.info("poll of %s failed (%s), attempt %d", key, type(error).__name__, failures)
                # Any refusal from the upstream is news for viewers (a 5xx as much as a 400
                # "invalid state" on a read: either way no message comes through); the bus's
                # trouble is ours to retry.
                upstream_side = not isinstance(error, BusUnavailableError)
                if upstream_side and status is not UpstreamStatus.DEGRADED:
                    with contextlib.suppress(BffError):
                        published = await self._bus.commit(
                            self.fence, status=UpstreamStatus.DEGRADED
                        )
                        if published is None:
                            self._release = False
                            return
                        status = UpstreamStatus.DEGRADED
            spent = spend(spent, budget, started)
            now = self._clock.monotonic()
            delay = next_delay(
                await self._fleet.histograms(),
                turn,
                spent,
                budget,
                started,
                failures=failures,
                retry_after_s=retry_after,
                jitter=self._rand(),
                readers=record.readers,
            )
            if not failures:
                # The schedule runs from poll start to poll start (a slow answer must not
                # stretch it); a backoff runs from the failure.
                delay = max(0.0, delay - (now - started))
            await self._clock.wait(self._wake, delay)

    # -- for the registry's supervisor (registry.py restarts a crashed poller) -------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the poller is stopped meanwhile."""
        deadline = self._clock.monotonic() + seconds
        while not self._stopping and (left := deadline - self._clock.monotonic()) > 0:
            self._wake.clear()
            await self._clock.wait(self._wake, left)


def _crashed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None
