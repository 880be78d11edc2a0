"""The Redis bus: every role of `base.Bus`, shared by a fleet of instances.

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
    <prefix>:interest         sorted set of chats, score = interest expiry (`_interest_redis`)
    <prefix>:{<chat>}:push    hash: push token, handle, notified watermark (`_push_redis`)
    <prefix>:{outbox}:...     the webhook outbox: a queue per kind (`_outbox_redis`)
    <prefix>:rate:{..}, :lim:{..}, :alive:{..}, :set:{..}   fleet-wide limits (`_limits_redis`)
    <prefix>:{idem:<client>}:.., <prefix>:{idem}:count   Idempotency-Key (`_idempotency_redis`)
    <prefix>:{transcripts}:held, :expiry   the fleet's budget of cached transcripts (`_budget`)
    <prefix>:{fleet}:hist:<kind>   decayed histograms of reply and join times (`_fleet_redis`)

Lease, ChatCache, FanOut and Pokes are here; every other role is a part of its own, in the
module named above, which this bus builds on its client and its bounded calls (`_calls`).

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
from typing import cast

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.bus import _scripts, base
from app.bus._budget import TranscriptBudget
from app.bus._calls import Calls
from app.bus._connect import make_clients
from app.bus._fleet_redis import RedisFleetStats
from app.bus._hub import LocalSubscription, check_chat
from app.bus._idempotency_redis import RedisIdempotency
from app.bus._interest_redis import RedisInterest
from app.bus._limits_redis import RedisLimits
from app.bus._link import FAILURES
from app.bus._outbox_redis import RedisOutbox
from app.bus._parts import DelegatedRoles
from app.bus._pubsub import PubSubFanOut
from app.bus._push_redis import RedisPushRecords
from app.bus._routing import router_for
from app.bus.base import Bus
from app.bus.chats import CachedMessages, ChatRecord, Fence, TranscriptLimits, TranscriptMeter
from app.bus.hooks import PushState
from app.errors import BusUnavailableError
from app.events import POKE, ChatEvent, EventKind, decode_events, encode_events, state_wire
from app.models import ChatState, TranscriptEntry, UpstreamStatus

_POKE = encode_events([POKE])


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisBus(DelegatedRoles):
    """`Bus` on Redis (plain, Sentinel or Cluster; see `redis_url` for URL forms)."""

    _limits: RedisLimits  # its own part's type: `aclose` stops the limits' background tasks

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = base.KEY_PREFIX,
        retention_s: float = base.RETENTION_S,
        subscriber_buffer: int = base.SUBSCRIBER_BUFFER,
        op_timeout_s: float = base.OP_TIMEOUT_S,
        failover_wait_s: float = 0.0,
        holder_ttl_s: float = base.HOLDER_TTL_S,
        client_name: str = "chat-bff",
        keepalive_s: float = 5.0,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        on_error: Callable[[], None] | None = None,
        transcripts: TranscriptLimits | None = None,
        meter: TranscriptMeter | None = None,
        history_half_life_s: float = base.HISTORY_HALF_LIFE_S,
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
        self._fanout = PubSubFanOut(
            router_for(self._clients, self.pubsub_client_name),
            self._channel,
            buffer=subscriber_buffer,
            op_timeout_s=op_timeout_s,
            wait_s=failover_wait_s,
            keepalive_s=keepalive_s,
            backoff=(reconnect_min_s, reconnect_max_s),
            name=f"chat-bff bus reader {instance}",
        )
        self._hub = self._fanout.hub
        # The roles with parts of their own, each in its module (`_parts` forwards the first four).
        self._limits = RedisLimits(
            r, self._calls, prefix=prefix, instance=instance, holder_ttl_s=holder_ttl_s
        )
        self._outbox = RedisOutbox(r, self._calls, prefix=prefix, instance=instance)
        self._idempotency = RedisIdempotency(r, self._calls, prefix=prefix, instance=instance)
        # Observations are worth no wait through a failover: the next reply brings another.
        self._fleet = RedisFleetStats(
            r,
            lambda op: self._calls.run(op, wait=False),
            prefix=prefix,
            half_life_s=history_half_life_s,
        )
        self._interest = RedisInterest(r, self._calls, prefix=prefix, key=self._key)
        self._push = RedisPushRecords(
            r, self._calls, key=self._key, retention_ms=self._retention_ms
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
        messages: Sequence[TranscriptEntry] = (),
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

    async def messages(self, chat: str, after: int, limit: int = 1000) -> list[TranscriptEntry]:
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
            out.append(TranscriptEntry(int(index), raw=body))
        return out

    async def transcript(self, chat: str, after: int, limit: int = 1000) -> CachedMessages:
        keys = [self._key(check_chat(chat), "meta"), self._key(chat, "log")]
        args: list[str | int] = [int(after), max(0, int(limit))]  # LIMIT 0 0: none
        floor, rows = await self._calls.run(lambda: self._transcript(keys=keys, args=args))
        out = []
        for row in cast(list[str], rows):
            index, _, body = row.partition(":")
            out.append(TranscriptEntry(int(index), raw=body))
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

    # -- Interest and PushRecords: parts of their own (`_interest_redis`, `_push_redis`) -----

    async def note_interest(self, chat: str, ref: str, ttl_s: float) -> None:
        await self._interest.note_interest(chat, ref, ttl_s)

    async def interested(self) -> dict[str, str]:
        return await self._interest.interested()

    async def note_reader(self, chat: str, ttl_s: float) -> None:
        await self._interest.note_reader(chat, ttl_s)

    async def push_register(self, chat: str, *, handle: str, push_token: str) -> None:
        await self._push.push_register(chat, handle=handle, push_token=push_token)

    async def push_settle(self, chat: str) -> PushState | None:
        return await self._push.push_settle(chat)

    async def push_advance(self, chat: str, upto: int, *, ended: bool) -> None:
        await self._push.push_advance(chat, upto, ended=ended)

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


# Interface guard: mypy checks that RedisBus satisfies every protocol in `Bus`.
_: type[Bus] = RedisBus
