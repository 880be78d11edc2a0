"""The upstream emulator as the benchmarks run it: the app's emulator unchanged, served by
uvicorn without access logs, plus bench-only routes under /_bench:

- `GET /_bench/chats`: customer nickname by chat id;
- `GET /_bench/requests_for?chat=ID&since=SEQ`: one chat's request timeline;
- `POST /_bench/say` `{"items": [{"chat": id, "text": t}, ...]}`: the agents of many chats post
  at once (one control call instead of hundreds); answers each message's index and the
  emulator's `utcTime` (ms) of the commit.
- `POST /_bench/bot_say` `{"chat": id, "text": t}`: a bot in front of the queue answers (a
  Text from an `External` participant named Bot, no agent joins, the chat keeps waiting).

Run: `python -m bench.emulator --port N [--contact-center-id ID] [--agent-join-delay S] ...`
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

import uvicorn
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.emulator.state import ChatStateError, Participant, UnknownChatError


class SayItem(BaseModel):
    chat: str
    text: str


class SayBatch(BaseModel):
    items: list[SayItem]


# Bots in front of the queue post as a party of their own, neither the customer nor the agent
# (who joins only after the hand-over).
BOT = Participant("Bot", 4, "External")


def bench_router(emulator: Emulator) -> APIRouter:
    router = APIRouter(prefix="/_bench")

    @router.post("/say")
    async def say(batch: SayBatch) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for item in batch.items:
            try:
                index = await emulator.agent_say(item.chat, item.text)
            except (UnknownChatError, ChatStateError):
                results.append({"chat": item.chat, "index": None, "utcTime": None})
                continue
            stamp = emulator.chat(item.chat).transcript[index - 1].utc_time_ms
            results.append({"chat": item.chat, "index": index, "utcTime": stamp})
        return {"results": results}

    @router.post("/bot_say")
    async def bot_say(item: SayItem) -> dict[str, Any]:
        try:
            chat = emulator.chat(item.chat)
        except UnknownChatError as exc:
            raise HTTPException(404, str(exc)) from exc
        if not chat.live:
            raise HTTPException(409, "the chat is over")
        message = chat.post("Text", BOT, item.text)
        return {"index": message.index, "utcTime": message.utc_time_ms}

    @router.get("/chats")
    async def chats() -> dict[str, str]:
        """Every chat's customer nickname by chat id (to map chat-bff's handles, created
        under unique nicknames, to upstream ids)."""
        return {chat.id: chat.customer.nickname for chat in emulator.chats.values()}

    @router.get("/requests_for")
    async def requests_for(chat: str, since: int = 0) -> dict[str, Any]:
        """The logged requests of one chat (method, path, query, at, seq): the full log
        carries every header and body, too heavy to ship for one chat's timeline."""
        entries = [
            {"seq": e.seq, "method": e.method, "query": e.query, "at": e.at, "path": e.path}
            for e in emulator.requests(since)
            if e.chat_id == chat
        ]
        return {"requests": entries, "last_seq": emulator.log.last_seq}

    return router


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--contact-center-id", default="demo-contact-center")
    parser.add_argument("--agent-join-delay", type=float, default=2.0)
    parser.add_argument("--agent-reply-delay", type=float, default=1.0)
    parser.add_argument("--idle-disconnect", type=float, default=45.0)
    parser.add_argument("--log-limit", type=int, default=20000)
    parser.add_argument(
        "--no-scripted-agent",
        action="store_true",
        help="agents act only through the control API (a benchmark's conversation model)",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    emulator = Emulator(
        EmulatorConfig(
            contact_center_id=args.contact_center_id or None,
            agent_join_delay_s=args.agent_join_delay,
            agent_reply_delay_s=args.agent_reply_delay,
            idle_disconnect_s=args.idle_disconnect,
            log_limit=args.log_limit,
            scripted_agent=not args.no_scripted_agent,
        )
    )
    app = create_emulator_app(emulator)
    app.include_router(bench_router(emulator))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
