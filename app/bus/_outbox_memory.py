"""The webhook outbox of the in-process bus (`MemoryBus`): one queue per kind, each bounded by
its quota (items and bytes), in structures whose cost does not grow with the backlog.

Owns the outbox's data in plain dicts and, per kind, a heap of (due time, sequence, id): a
claim pops the earliest due entries (O(log n) each) instead of scanning every item. An entry
whose item was retried, claimed again or done since it was pushed is stale (its sequence is
no longer the item's) and is dropped when it reaches the top; the heap is rebuilt when stale
entries outnumber live ones. Ids of delivered items are remembered in the order they were
done, forgotten from the oldest (expired, or beyond the kind's `remember`). Every method runs
without an `await` between read and write, so each one is atomic on the event loop. It must
not be shared between processes (`RedisBus` does that).
"""

from __future__ import annotations

import heapq
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.bus.hooks import Claim, ClaimBatch, OutboxHeld, OutboxItem, OutboxQuota
from app.errors import OutboxFullError

_KIND = re.compile(r"[a-z0-9_-]{1,16}")


def check_kind(kind: str) -> str:
    """A kind names keys on Redis: short, and nothing a key or a hash tag could trip on."""
    if not _KIND.fullmatch(kind):
        raise ValueError("invalid outbox kind")
    return kind


@dataclass(slots=True)
class _Item:
    payload: str
    size: int
    due: float
    seq: int  # of its one live heap entry
    attempts: int = 0
    token: str = ""  # the claim's, while claimed


@dataclass(slots=True)
class _Queue:
    items: dict[str, _Item] = field(default_factory=dict)
    heap: list[tuple[float, int, str]] = field(default_factory=list)
    bytes: int = 0
    # Delivered ids: a set to look up, a FIFO to forget from the oldest (a dict popped from
    # its front costs more with every deleted slot it has to skip).
    done: set[str] = field(default_factory=set)
    done_order: deque[tuple[str, float]] = field(default_factory=deque)


class MemoryOutbox:
    """`Outbox` in one process. `clock`: monotonic seconds (tests count its comparisons)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._seq = 0

    def _queue(self, kind: str) -> _Queue:
        queue = self._queues.get(kind)
        if queue is None:
            queue = self._queues[check_kind(kind)] = _Queue()
        return queue

    def _schedule(self, queue: _Queue, item_id: str, item: _Item, due: float) -> None:
        self._seq += 1
        item.due, item.seq = due, self._seq
        heapq.heappush(queue.heap, (due, self._seq, item_id))
        if len(queue.heap) > 2 * len(queue.items) + 64:
            # Stale entries outnumber live ones (many retries, none yet due): start over, once.
            queue.heap = [(i.due, i.seq, k) for k, i in queue.items.items()]
            heapq.heapify(queue.heap)

    def _head(self, queue: _Queue) -> tuple[float, int, str] | None:
        """The live entry due first, stale entries above it dropped."""
        heap = queue.heap
        while heap:
            _, seq, item_id = heap[0]
            item = queue.items.get(item_id)
            if item is not None and item.seq == seq:
                return heap[0]
            heapq.heappop(heap)
        return None

    @staticmethod
    def _forget(queue: _Queue, now: float, remember: int | None = None) -> None:
        order = queue.done_order
        while order:
            oldest, until = order[0]
            if until > now and (remember is None or len(order) <= remember):
                return
            order.popleft()
            queue.done.discard(oldest)

    async def outbox_put(self, item: OutboxItem, quota: OutboxQuota) -> bool:
        queue, now = self._queue(item.kind), self._clock()
        self._forget(queue, now)
        if item.id in queue.items or item.id in queue.done:
            return False
        if len(queue.items) >= quota.max_items:
            raise OutboxFullError(item.kind, "items")
        size = item.size
        if queue.bytes + size > quota.max_bytes:
            raise OutboxFullError(item.kind, "bytes")
        entry = _Item(item.payload, size, now, 0)
        queue.items[item.id] = entry
        queue.bytes += size
        self._schedule(queue, item.id, entry, now)
        return True

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch:
        queue, now = self._queue(kind), self._clock()
        token = secrets.token_hex(8)
        claims: list[Claim] = []
        while len(claims) < limit:
            head = self._head(queue)
            if head is None or head[0] > now:
                break
            heapq.heappop(queue.heap)
            item_id = head[2]
            item = queue.items[item_id]
            item.attempts += 1
            item.token = token
            self._schedule(queue, item_id, item, now + claim_s)
            claims.append(Claim(item_id, item.payload, token, item.attempts, kind))
        head = self._head(queue)
        wait = None if head is None else max(0.0, head[0] - now)
        return ClaimBatch(claims, wait, OutboxHeld(len(queue.items), queue.bytes))

    def _claimed(self, claim: Claim) -> _Item | None:
        queue = self._queues.get(claim.kind)
        item = None if queue is None else queue.items.get(claim.id)
        if item is None or not item.token or item.token != claim.token:
            return None
        return item

    async def outbox_done(self, claim: Claim, *, done_ttl_s: float, remember: int) -> bool:
        item = self._claimed(claim)
        if item is None:
            return False
        queue, now = self._queues[claim.kind], self._clock()
        del queue.items[claim.id]  # its heap entry is stale from now on
        queue.bytes -= item.size
        queue.done.add(claim.id)
        queue.done_order.append((claim.id, now + done_ttl_s))
        self._forget(queue, now, remember)
        return True

    async def outbox_retry(self, claim: Claim, delay_s: float) -> bool:
        item = self._claimed(claim)
        if item is None:
            return False
        item.token = ""
        self._schedule(self._queues[claim.kind], claim.id, item, self._clock() + delay_s)
        return True

    async def outbox_held(self, kind: str) -> OutboxHeld:
        queue = self._queue(kind)
        return OutboxHeld(len(queue.items), queue.bytes)
