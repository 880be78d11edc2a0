"""The Redis bus: lease, chat cache, fan-out and limits shared by a fleet of instances.

Owns the Redis data model of a chat. Every key of one chat is hash-tagged `{chat}` so they all
live in one Cluster slot and each write is one atomic Lua script (`_scripts`):

    <prefix>:{<chat>}:lease   the holder's token, PX ttl
    <prefix>:{<chat>}:epoch   fencing epoch, INCR on every grant
    <prefix>:{<chat>}:log     sorted set, score = index, member = "<index>:<body JSON>"
    <prefix>:{<chat>}:meta    hash: cursor, state, status, ended, completed, ixl, c:<cookie>,
                              bytes (held in the log), floor (highest index dropped from it)
    <prefix>:{<chat>}:ref     what a poller needs to reach the chat upstream, PX interest ttl
    <prefix>:{<chat>}:readers present while a reader of the chat is, PX reader ttl
    <prefix>:{<chat>}:events  pub/sub channel: one JSON list of events per commit
    <prefix>:interest         sorted set of chats, score = interest expiry (server ms)
    <prefix>:{<chat>}:push    hash: push token, handle, notified watermark, end notified
    <prefix>:{outbox}:...     the webhook outbox: a queue per kind (`_outbox_redis`)
    <prefix>:rate:{..}, :lim:{..}, :alive:{..}, :set:{..}   fleet-wide limits (`_limits`)
    <prefix>:{idem:<client>}:.., <prefix>:{idem}:count   Idempotency-Key answers (`_idempotency`)
    <prefix>:{transcripts}:held, :expiry   the fleet's budget of cached transcripts (`_budget`)
    <prefix>:{fleet}:hist:<kind>   decayed histograms of reply and join times (`fleet`)

Cluster rules (plain Redis and Sentinel follow them too, so one code path serves all three):

* A new key of a chat goes under `_key(chat, name)`; a global key carries its own tag (or
  none) and is never touched by a script together with a chat's keys.
* A script touches keys of one slot only and names them all in KEYS. Work spanning chats is
  one script call per chat, batched into one pipeline (`_calls.Calls.eval_many`): redis-py's
  Cluster pipeline sends each node its share in one round trip, all nodes at once.
* Fan-out uses sharded pub/sub on a Cluster (`_pubsub`): COMMIT SPUBLISHes on the chat's
  channel, in the chat's slot.

Fencing is done by Redis itself: `commit` stores and publishes only if the lease still holds
the fence's token. Every call is bounded by `op_timeout_s` per attempt; calls a customer waits
for are retried through a failover (connection refused, CLUSTERDOWN, READONLY, a Sentinel
without a master) for up to `failover_wait_s`, then fail as `BusUnavailableError`. The lease
calls of pollers (`renew`, `commit`, `release`) are never retried here: a lease is worth less
than its ttl, and the registry retries on its own schedule. No Redis error passes this module's
boundary other than as BusUnavailableError.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, TypeVar, cast

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.bus import _scripts
from app.bus._budget import TranscriptBudget
from app.bus._calls import Calls
from app.bus._connect import make_clients
from app.bus._hub import LocalSubscription, check_chat
from app.bus._idempotency import RedisIdempotency
from app.bus._limits import RedisLimits
from app.bus._link import FAILURES
from app.bus._outbox_redis import RedisOutbox
from app.bus._pubsub import PubSubFanOut
from app.bus._routing import ClusterRouter, SingleRouter
from app.bus.base import (
    Bus,
    CachedMessages,
    ChatRecord,
    Claim,
    ClaimBatch,
    Fence,
    IdempotencyClaim,
    OutboxHeld,
    OutboxItem,
    OutboxQuota,
    PushState,
    TranscriptLimits,
    TranscriptMeter,
)
from app.bus.fleet import HistogramKind, Histograms, RedisFleetStats
from app.errors import BusUnavailableError
from app.events import POKE, ChatEvent, EventKind, decode_events, encode_events, state_wire
from app.models import ChatState, Message, UpstreamStatus

T = TypeVar("T")
_POKE = encode_events([POKE])


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisBus:
    """`Bus` on Redis (plain, Sentinel or Cluster; see `_connect` for URL forms)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "bff",
        retention_s: float = 86400,
        subscriber_buffer: int = 256,
        op_timeout_s: float = 2.0,
        failover_wait_s: float = 0.0,
        holder_ttl_s: float = 15.0,
        client_name: str = "chat-bff",
        keepalive_s: float = 5.0,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        on_error: Callable[[], None] | None = None,
        transcripts: TranscriptLimits | None = None,
        meter: TranscriptMeter | None = None,
        history_half_life_s: float = 3600.0,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("invalid key prefix")
        self._prefix = prefix
        self._retention_ms = _ms(retention_s)
        self._caps = transcripts or TranscriptLimits()
        self._meter = meter
        self._timeout = op_timeout_s
        instance = secrets.token_hex(4)
        self._instance = instance
        self.client_name = client_name
        self.pubsub_client_name = f"{client_name}-pubsub-{instance}"
        self._clients = make_clients(
            url,
            socket_timeout=op_timeout_s,
            socket_connect_timeout=op_timeout_s,
            decode_responses=True,
            client_name=client_name,
            # One quick retry rescues a pooled connection the server dropped while idle.
            retry=Retry(NoBackoff(), 1),
        )
        r = self._redis = self._clients.commands
        self._calls = Calls(
            r, op_timeout_s=op_timeout_s, failover_wait_s=failover_wait_s, on_error=on_error
        )
        self.cluster = isinstance(r, RedisCluster)
        self._publish = "SPUBLISH" if self.cluster else "PUBLISH"
        self._acquire = r.register_script(_scripts.ACQUIRE)
        self._renew = r.register_script(_scripts.RENEW)
        self._release = r.register_script(_scripts.RELEASE)
        self._commit = r.register_script(_scripts.COMMIT)
        self._transcript = r.register_script(_scripts.TRANSCRIPT)
        self._claim = r.register_script(_scripts.CLAIM_INDEXLESS)
        self._cookies = r.register_script(_scripts.SET_COOKIES)
        self._completed = r.register_script(_scripts.MARK_COMPLETED)
        self._note_ref = r.register_script(_scripts.NOTE_REF)
        self._note_interest = r.register_script(_scripts.NOTE_INTEREST)
        self._live_interest = r.register_script(_scripts.LIVE_INTEREST)
        self._register_hooks_scripts(r)
        self._idempotency = RedisIdempotency(r, self._calls, prefix=prefix, instance=instance)
        # RESP2 and bytes: redis-py parses PING replies on a pub/sub connection (our barriers)
        # right only in that mode. No retries: a lost connection must surface to the reader.
        pubsub_kwargs: dict[str, Any] = {
            "client_name": self.pubsub_client_name,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
            "decode_responses": False,
        }
        clients = self._clients
        router = (
            ClusterRouter(
                cast(RedisCluster, r),
                lambda host, port: clients.node_client(host, port, **pubsub_kwargs),
            )
            if self.cluster
            else SingleRouter(lambda: clients.pubsub_client(**pubsub_kwargs))
        )
        self._fanout = PubSubFanOut(
            router,
            self._channel,
            buffer=subscriber_buffer,
            op_timeout_s=op_timeout_s,
            wait_s=failover_wait_s,
            keepalive_s=keepalive_s,
            backoff=(reconnect_min_s, reconnect_max_s),
            name=f"chat-bff bus reader {instance}",
        )
        self._hub = self._fanout.hub
        self._limits = RedisLimits(
            r, self._calls, prefix=prefix, instance=instance, holder_ttl_s=holder_ttl_s
        )
        # Observations are worth no wait through a failover: the next reply brings another.
        self._fleet = RedisFleetStats(
            r,
            lambda op: self._calls.run(op, wait=False),
            prefix=prefix,
            half_life_s=history_half_life_s,
        )
        self._budget = TranscriptBudget(
            self._calls,
            r.register_script(_scripts.BUDGET),
            r.register_script(_scripts.DROP_LOG),
            prefix=prefix,
            budget_bytes=self._caps.budget_bytes,
            retention_ms=self._retention_ms,
            chat_keys=lambda chat: [self._key(chat, "meta"), self._key(chat, "log")],
            meter=meter,
        )

    # -- naming and plumbing --------------------------------------------------------------

    def _key(self, chat: str, name: str) -> str:
        return f"{self._prefix}:{{{chat}}}:{name}"

    def _channel(self, chat: str) -> str:
        return self._key(chat, "events")

    # -- Lease ----------------------------------------------------------------------------

    async def acquire(self, chat: str, ttl_s: float) -> Fence | None:
        keys = [self._key(check_chat(chat), "lease"), self._key(chat, "epoch")]
        token = f"{self._instance}:{secrets.token_hex(16)}"
        args: list[str | int] = [token, _ms(ttl_s), self._retention_ms]
        epoch = await self._calls.run(lambda: self._acquire(keys=keys, args=args))
        return None if epoch is None else Fence(chat=chat, token=token, epoch=int(epoch))

    async def renew(self, fences: Sequence[Fence], ttl_s: float) -> frozenset[Fence]:
        if not fences:
            return frozenset()
        ttl = _ms(ttl_s)
        calls: list[tuple[list[str], list[str | int]]] = [
            ([self._key(f.chat, "lease")], [f.token, ttl]) for f in fences
        ]
        answers = await self._calls.run(
            lambda: self._calls.eval_many(self._renew, calls), wait=False
        )
        failed = [a for a in answers if isinstance(a, Exception)]
        if failed and len(failed) == len(answers):
            raise BusUnavailableError() from failed[0]
        # A renewal that could not be confirmed (its node failing) counts as lost.
        return frozenset(
            f for f, ok in zip(fences, answers, strict=True) if ok and not isinstance(ok, Exception)
        )

    async def release(self, fence: Fence) -> None:
        keys, args = [self._key(fence.chat, "lease")], [fence.token]
        await self._calls.run(lambda: self._release(keys=keys, args=args), wait=False)

    # -- ChatCache ------------------------------------------------------------------------

    async def commit(
        self,
        fence: Fence,
        messages: Sequence[Message] = (),
        *,
        state: ChatState | None = None,
        status: UpstreamStatus | None = None,
        ended: bool = False,
    ) -> list[ChatEvent] | None:
        chat = fence.chat
        keys = [self._key(chat, n) for n in ("lease", "meta", "log", "epoch")]
        args: list[str | int] = [
            fence.token,
            self._retention_ms,
            self._channel(chat),
            "" if state is None else state_wire(state),
            "" if status is None else status.value,
            "1" if ended else "0",
            self._publish,
            self._caps.max_messages,
            self._caps.max_bytes,
            _ms(self._caps.ended_retention_s),
        ]
        seen: set[int] = set()
        for message in sorted(messages, key=lambda m: m.index):
            if message.index not in seen:
                seen.add(message.index)
                args += [int(message.index), message.raw]
        answer = await self._calls.run(lambda: self._commit(keys=keys, args=args), wait=False)
        if answer is None:
            return None
        payload, held, dropped, was_ended = answer
        if int(dropped) and self._meter is not None:
            self._meter.transcript_evicted("chat_cap", int(dropped))
        events = decode_events(str(payload))
        ttl = _ms(self._caps.ended_retention_s) if int(was_ended) else self._retention_ms
        changed = bool(int(dropped)) or any(
            e.kind in (EventKind.MESSAGE, EventKind.END) for e in events
        )
        self._budget.report(chat, int(held), ttl, changed=changed)
        return events

    async def record(self, chat: str) -> ChatRecord:
        meta = self._key(check_chat(chat), "meta")
        readers_key = self._key(chat, "readers")

        async def load() -> tuple[dict[str, str], bool]:
            # Both keys share the chat's slot: one round trip, on Cluster too.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(meta)
                pipe.exists(readers_key)
                fields, readers = await pipe.execute()
            return cast(dict[str, str], fields), bool(readers)

        fields, readers = await self._calls.run(load)
        if not fields:
            return ChatRecord(readers=readers)
        state = fields.get("state")
        return ChatRecord(
            cursor=int(fields.get("cursor", 0)),
            state=None if state is None else ChatState.from_json(json.loads(state)),
            status=UpstreamStatus(fields.get("status", UpstreamStatus.OK.value)),
            ended=fields.get("ended") == "1",
            completed=fields.get("completed") == "1",
            indexless_cursor=int(fields.get("ixl", 0)),
            cookies={k[2:]: v for k, v in fields.items() if k.startswith("c:")},
            readers=readers,
        )

    async def messages(self, chat: str, after: int, limit: int = 1000) -> list[Message]:
        if limit <= 0:
            return []
        log_key = self._key(check_chat(chat), "log")
        raw = await self._calls.run(
            lambda: self._redis.zrange(
                log_key, f"({after}", "+inf", byscore=True, offset=0, num=limit
            )
        )
        rows = cast(list[str], raw)
        out = []
        for row in rows:
            index, _, body = row.partition(":")
            out.append(Message(int(index), raw=body))
        return out

    async def transcript(self, chat: str, after: int, limit: int = 1000) -> CachedMessages:
        keys = [self._key(check_chat(chat), "meta"), self._key(chat, "log")]
        args: list[str | int] = [int(after), max(0, int(limit))]  # LIMIT 0 0: none
        floor, rows = await self._calls.run(lambda: self._transcript(keys=keys, args=args))
        out = []
        for row in cast(list[str], rows):
            index, _, body = row.partition(":")
            out.append(Message(int(index), raw=body))
        return CachedMessages(int(floor), out)

    async def claim_indexless(self, chat: str, upto: int) -> int:
        keys, args = [self._key(check_chat(chat), "meta")], [int(upto), self._retention_ms]
        return int(await self._calls.run(lambda: self._claim(keys=keys, args=args)))

    async def set_cookies(self, chat: str, cookies: dict[str, str]) -> None:
        keys = [self._key(check_chat(chat), "meta")]
        if not cookies:
            return
        args: list[str | int] = [self._retention_ms]
        for name, value in cookies.items():
            args += [name, value]
        await self._calls.run(lambda: self._cookies(keys=keys, args=args))

    async def mark_completed(self, chat: str) -> None:
        keys, args = [self._key(check_chat(chat), "meta")], [self._retention_ms]
        await self._calls.run(lambda: self._completed(keys=keys, args=args))

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        ref_key = self._key(check_chat(chat), "ref")
        interest = f"{self._prefix}:interest"

        # Two scripts, not one: the ref lives in the chat's slot, the set in its own.
        async def both() -> None:
            await asyncio.gather(
                self._note_ref(keys=[ref_key], args=[ref, _ms(ttl_s)]),
                self._note_interest(keys=[interest], args=[chat, _ms(ttl_s)]),
            )

        await self._calls.run(both)

    async def interested(self) -> dict[str, str]:
        interest = f"{self._prefix}:interest"

        async def load() -> dict[str, str]:
            chats: list[str] = await self._live_interest(keys=[interest], args=[])
            if not chats:
                return {}
            pipe = self._redis.pipeline(transaction=False)
            for chat in chats:
                pipe.get(self._key(chat, "ref"))
            refs: list[str | None] = await pipe.execute()
            return {c: r for c, r in zip(chats, refs, strict=True) if r is not None}

        return await self._calls.run(load)

    # -- reader presence ------------------------------------------------------------------

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        keys = [self._key(check_chat(chat), "readers")]
        # The same "longest expiry wins" SET as the interest ref.
        await self._calls.run(lambda: self._note_ref(keys=keys, args=["1", _ms(ttl_s)]))

    # -- FanOut ---------------------------------------------------------------------------

    def subscribe(self, chat: str) -> AbstractAsyncContextManager[LocalSubscription]:
        return self._fanout.subscribe(chat)

    async def poke(self, chat: str) -> None:
        """Publish one POKE event to the chat's subscribers on every instance (its poller asks
        the upstream at once). Stores nothing and needs no lease."""
        channel = self._channel(check_chat(chat))
        await self._calls.run(lambda: self._redis.execute_command(self._publish, channel, _POKE))

    def start(self) -> None:
        """Start the pub/sub reader now rather than on the first `subscribe`."""
        self._fanout.start()

    # -- lifecycle ------------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                if isinstance(self._redis, RedisCluster):
                    # Every primary (the bus needs every slot), no replica.
                    return bool(await self._redis.ping(target_nodes=RedisCluster.PRIMARIES))
                return bool(await self._redis.ping())
        except FAILURES:
            return False

    async def aclose(self) -> None:
        await self._budget.aclose()
        await self._limits.aclose()
        await self._fanout.aclose()
        with suppress(Exception):
            await self._redis.aclose()
        if self._clients.sentinel is not None:
            for client in self._clients.sentinel.sentinels:
                with suppress(Exception):
                    await client.aclose()

    # -- Limits ---------------------------------------------------------------------------

    async def observe(self, kind: HistogramKind, seconds: float) -> None:
        await self._fleet.observe(kind, seconds)

    async def snapshot(self) -> Histograms:
        return await self._fleet.snapshot()

    async def take(self, name: str, key: str, per_minute: float, burst: int) -> float:
        return await self._limits.take(name, key, per_minute, burst)

    async def occupy(self, name: str, key: str, limit: int) -> bool:
        return await self._limits.occupy(name, key, limit)

    async def admit(self, name: str, key: str, member: str, ttl_s: float, limit: int) -> bool:
        return await self._limits.admit(name, key, member, ttl_s, limit)

    def vacate(self, name: str, key: str) -> None:
        self._limits.vacate(name, key)

    # -- webhook outbox and push records (hooks) ------------------------------------------

    def _register_hooks_scripts(self, r: Any) -> None:
        self._push_register = r.register_script(_scripts.PUSH_REGISTER)
        self._push_settle = r.register_script(_scripts.PUSH_SETTLE)
        self._push_advance = r.register_script(_scripts.PUSH_ADVANCE)
        self._outbox = RedisOutbox(r, self._calls, prefix=self._prefix, instance=self._instance)

    async def push_register(self, chat: str, *, handle: str, push_token: str) -> None:
        keys = [self._key(check_chat(chat), "push")]
        args: list[str | int] = [push_token, handle, self._retention_ms]
        await self._calls.run(lambda: self._push_register(keys=keys, args=args))

    async def push_settle(self, chat: str) -> PushState | None:
        keys = [self._key(check_chat(chat), n) for n in ("push", "readers", "meta")]
        row = await self._calls.run(lambda: self._push_settle(keys=keys, args=[self._retention_ms]))
        if row is None:
            return None
        readers, notified, end_notified, cursor, ended, token, handle = row
        return PushState(
            push_token=str(token),
            handle=str(handle),
            notified=int(notified),
            end_notified=bool(int(end_notified)),
            cursor=int(cursor),
            ended=bool(int(ended)),
            readers=bool(int(readers)),
        )

    async def push_advance(self, chat: str, upto: int, *, ended: bool) -> None:
        keys = [self._key(check_chat(chat), "push")]
        args: list[str | int] = [int(upto), "1" if ended else "0", self._retention_ms]
        await self._calls.run(lambda: self._push_advance(keys=keys, args=args))

    # The outbox lives in its own module (`_outbox_redis`): a queue per kind, with quotas.

    async def outbox_put(self, item: OutboxItem, quota: OutboxQuota) -> bool:
        return await self._outbox.outbox_put(item, quota)

    async def outbox_claim(self, kind: str, limit: int, claim_s: float) -> ClaimBatch:
        return await self._outbox.outbox_claim(kind, limit, claim_s)

    async def outbox_done(self, claim: Claim, *, done_ttl_s: float, remember: int) -> bool:
        return await self._outbox.outbox_done(claim, done_ttl_s=done_ttl_s, remember=remember)

    async def outbox_retry(self, claim: Claim, delay_s: float) -> bool:
        return await self._outbox.outbox_retry(claim, delay_s)

    async def outbox_held(self, kind: str) -> OutboxHeld:
        return await self._outbox.outbox_held(kind)

    # -- IdempotencyStore (app/bus/_idempotency.py) ---------------------------------------

    async def idempotency_begin(
        self,
        client: str,
        key: str,
        fingerprint: str,
        *,
        in_flight_s: float,
        max_per_client: int,
        max_total: int,
        floor_per_client: int = 0,
    ) -> IdempotencyClaim:
        return await self._idempotency.begin(
            client,
            key,
            fingerprint,
            in_flight_s=in_flight_s,
            max_per_client=max_per_client,
            max_total=max_total,
            floor_per_client=floor_per_client,
        )

    async def idempotency_finish(
        self, client: str, key: str, token: str, answer: str, keep_s: float
    ) -> bool:
        return await self._idempotency.finish(client, key, token, answer, keep_s)

    async def idempotency_abandon(self, client: str, key: str, token: str) -> None:
        await self._idempotency.abandon(client, key, token)

    async def idempotency_size(self) -> int:
        return await self._idempotency.size()


# Interface guard: mypy checks that RedisBus satisfies every protocol in `Bus`.
_: type[Bus] = RedisBus
