"""The control API of the emulator (/_emulator): statistics, the request log, fault switching,
chat inspection and puppeteering the agent, for tests, benchmarks and demos.

Not part of the simulated upstream: its requests are never counted or logged, never faulted.
It must not reach into chat internals beyond the `Emulator` methods.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from app.emulator.core import Emulator
from app.emulator.faults import Faults
from app.emulator.state import ChatStateError, UnknownChatError

CONTROL_PREFIX = "/_emulator"


class FaultsBody(BaseModel):
    """The `Faults` fields, validated."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0)
    outage: bool = False
    error_status: int | None = Field(None, ge=100, le=599)
    error_body_kind: Literal["json", "text", "html", "garbage", "empty"] = "json"
    error_code: int = Field(4, ge=0, le=999)
    retry_after_s: int | None = Field(None, ge=0)
    hang: bool = False
    routes: Literal["all", "read", "write"] = "all"
    remaining: int | None = Field(None, ge=0)
    drop_connection: bool = False


class SayBody(BaseModel):
    text: str = Field(min_length=1)


class TypingBody(BaseModel):
    typing: bool


class JoinBody(BaseModel):
    greet: bool = False
    """Also post the scripted notice and greeting."""


def _not_found(chat_id: str) -> HTTPException:
    return HTTPException(404, f"Chat not found {chat_id}")


def control_router(emulator: Emulator) -> APIRouter:
    """The /_emulator routes, bound to one emulator."""
    router = APIRouter(prefix=CONTROL_PREFIX, tags=["emulator control"])

    async def act(chat_id: str, action: Awaitable[int]) -> dict[str, int]:
        """Run an agent/platform action; map emulator errors to 404/409."""
        try:
            index = await action
        except UnknownChatError:
            raise _not_found(chat_id) from None
        except ChatStateError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"index": index}

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return emulator.stats()

    @router.get("/requests")
    async def requests(since: int = 0) -> dict[str, Any]:
        entries = emulator.requests(since)
        return {
            "requests": [entry.to_json() for entry in entries],
            "last_seq": emulator.log.last_seq,
        }

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        emulator.reset_stats()
        return emulator.stats()

    @router.get("/config")
    async def config() -> dict[str, Any]:
        # The pace in force, even when the `agent_*` delays make it.
        return asdict(emulator.config) | {"pace": asdict(emulator.config.agent_pace)}

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return asdict(emulator.faults)

    @router.put("/faults")
    async def put_faults(body: FaultsBody) -> dict[str, Any]:
        emulator.set_faults(Faults(**body.model_dump()))
        return asdict(emulator.faults)

    @router.delete("/faults")
    async def delete_faults() -> dict[str, Any]:
        emulator.clear_faults()
        return asdict(emulator.faults)

    @router.get("/chats")
    async def list_chats() -> dict[str, Any]:
        return {"chats": [{"id": c.id, "state": c.state} for c in emulator.chats.values()]}

    @router.get("/chats/{chat_id}")
    async def view_chat(chat_id: str) -> dict[str, Any]:
        try:
            return emulator.view(chat_id)
        except UnknownChatError:
            raise _not_found(chat_id) from None

    @router.post("/chats/{chat_id}/agent/join")
    async def agent_join(chat_id: str, body: JoinBody | None = None) -> dict[str, int]:
        greet = body.greet if body is not None else False
        return await act(chat_id, emulator.agent_join(chat_id, greet=greet))

    @router.post("/chats/{chat_id}/agent/say")
    async def agent_say(chat_id: str, body: SayBody) -> dict[str, int]:
        return await act(chat_id, emulator.agent_say(chat_id, body.text))

    @router.post("/chats/{chat_id}/agent/typing")
    async def agent_typing(chat_id: str, body: TypingBody) -> dict[str, int]:
        return await act(chat_id, emulator.agent_typing(chat_id, body.typing))

    @router.post("/chats/{chat_id}/agent/leave")
    async def agent_leave(chat_id: str) -> dict[str, int]:
        return await act(chat_id, emulator.agent_leave(chat_id))

    @router.post("/chats/{chat_id}/disconnect")
    async def disconnect(chat_id: str) -> dict[str, int]:
        return await act(chat_id, emulator.disconnect_customer(chat_id))

    @router.post("/chats/{chat_id}/close-silently")
    async def close_silently(chat_id: str) -> dict[str, int]:
        return await act(chat_id, emulator.close_silently(chat_id))

    return router
