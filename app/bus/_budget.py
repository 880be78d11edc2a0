"""The fleet's budget of cached transcript bytes on Redis (`TranscriptLimits.budget_bytes`).

A chat's log lives in the chat's slot; a fleet-wide total cannot be kept in the same atomic
step on a Cluster. So each commit's script reports what its chat's log holds now (an
absolute figure: a lost report heals at the chat's next commit), the instance batches the
reports, and once per flush (`FLUSH_S`) one script on the budget's own keys (tag
`{transcripts}`, one slot) records them, forgets chats whose logs expired and names the chats
to drop when the total is over the budget: those whose logs expire first (ended chats, then
the least recently committed). Their logs are then dropped, one script per chat in its slot,
batched per node. The total may thus exceed the budget for about one flush, by what the
fleet commits meanwhile.

    <prefix>:{transcripts}:held    hash: chat -> bytes held; '#total'
    <prefix>:{transcripts}:expiry  sorted set: chat -> when its log expires (server ms)

It owns the flusher task (started by the first report, ended by `aclose`) and must not touch
a chat's keys except through the drop script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from redis.commands.core import AsyncScript

from app.bus.chats import TranscriptMeter
from app.errors import BffError, describe_exception

log = logging.getLogger("chat_bff.bus")
T = TypeVar("T")

FLUSH_S = 0.5
# A chat whose log did not change is reported again after this at the earliest: its expiry
# in the budget lags the log's own by at most this (against a retention of hours).
REFRESH_S = 600.0
# Reports waiting at most; more (a bus down for long) and the oldest are forgotten: each chat
# reports again at its next commit.
MAX_PENDING = 100_000


class Runner(Protocol):
    async def run(self, op: Callable[[], Awaitable[T]], *, wait: bool = True) -> T: ...

    async def eval_many(
        self, script: AsyncScript, calls: Sequence[tuple[list[str], list[str | int]]]
    ) -> list[Any]: ...


class TranscriptBudget:
    def __init__(
        self,
        runner: Runner,
        budget_script: AsyncScript,
        drop_script: AsyncScript,
        *,
        prefix: str,
        budget_bytes: int,
        retention_ms: int,
        chat_keys: Callable[[str], list[str]],
        meter: TranscriptMeter | None,
    ) -> None:
        self._runner = runner
        self._budget = budget_script
        self._drop = drop_script
        self._keys = [f"{prefix}:{{transcripts}}:{name}" for name in ("held", "expiry")]
        self._budget_bytes = budget_bytes
        self._retention_ms = retention_ms
        self._chat_keys = chat_keys  # a chat's meta and log keys
        self._meter = meter
        self._pending: dict[str, tuple[int, int]] = {}  # chat -> (bytes, ttl ms)
        self._reported: dict[str, float] = {}  # chat -> when last reported (monotonic)
        self._next_cleanup = time.monotonic() + REFRESH_S
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def report(self, chat: str, nbytes: int, ttl_ms: int, *, changed: bool) -> None:
        """What `chat`'s log holds after a commit, and how long it is kept; `changed`: the
        commit stored or dropped messages, or ended the chat (else a poll that found
        nothing, reported only now and then)."""
        now = time.monotonic()
        if not changed and now - self._reported.get(chat, -REFRESH_S) < REFRESH_S:
            return
        self._reported[chat] = now
        if now >= self._next_cleanup:
            self._next_cleanup = now + REFRESH_S
            for old in [c for c, at in self._reported.items() if now - at >= REFRESH_S]:
                del self._reported[old]
        self._pending.pop(chat, None)
        self._pending[chat] = (nbytes, ttl_ms)
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._flusher(), name="transcript budget"
            )
        self._wake.set()

    async def _flusher(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except BffError as error:
                log.warning("transcript budget flush failed: %s", type(error).__name__)
            except Exception as error:  # a bug must not end the budget for good
                log.error("transcript budget flush crashed: %s", describe_exception(error))
            await asyncio.sleep(FLUSH_S)

    async def flush(self) -> None:
        """Record the waiting reports; drop the logs the budget names."""
        if not self._pending:
            return
        reports, self._pending = self._pending, {}
        args: list[str | int] = [self._budget_bytes, self._retention_ms]
        for chat, (nbytes, ttl_ms) in reports.items():
            args += [chat, nbytes, ttl_ms]
        try:
            total, victims = await self._runner.run(
                lambda: self._budget(keys=self._keys, args=args), wait=False
            )
        except BffError:
            for chat, report in reports.items():  # a newer report since wins
                self._pending.setdefault(chat, report)
            raise
        if victims:
            calls: list[tuple[list[str], list[str | int]]] = [
                (self._chat_keys(str(chat)), []) for chat in victims
            ]
            answers = await self._runner.run(
                lambda: self._runner.eval_many(self._drop, calls), wait=False
            )
            dropped = sum(int(a) for a in answers if not isinstance(a, Exception))
            if self._meter is not None:
                self._meter.transcript_evicted("budget", dropped)
        if self._meter is not None:
            self._meter.transcript_held(int(total))

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
