"""The emulator's control API from outside its process (`/_emulator`): request counters and
log, faults, its chats, an agent who speaks on cue; and a chat opened upstream directly.

It must not start the emulator (`harness.servers`) nor know chat-bff.
"""

from __future__ import annotations

import httpx

from harness.servers import CONTACT_CENTER_ID, ServerProcess


class EmulatorControl:
    """The emulator's control API: counters, request log, faults."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/_emulator", timeout=5)

    def count(self, method: str | None = None) -> int:
        """Upstream requests so far; with `method`, only those (the pollers' GETs run in the
        background all the time, so "reached no upstream" is judged on writes)."""
        stats = self.http.get("/stats").json()
        if method is None:
            total: int = stats["requests"]
            return total
        return sum(n for route, n in stats["by_route"].items() if route.startswith(method + " "))

    def requests(self) -> list[dict[str, object]]:
        data = self.http.get("/requests").json()
        return list(data["requests"] if isinstance(data, dict) else data)

    def reset(self) -> None:
        self.http.post("/reset").raise_for_status()

    def faults(self, **faults: object) -> None:
        self.http.put("/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/faults").raise_for_status()

    def chat(self, upstream_id: str) -> dict[str, object]:
        data: dict[str, object] = self.http.get(f"/chats/{upstream_id}").json()
        return data

    def agent_say(self, upstream_id: str, text: str) -> int:
        index: int = self.http.post(f"/chats/{upstream_id}/agent/say", json={"text": text}).json()[
            "index"
        ]
        return index

    def close(self) -> None:
        self.http.close()


def create_upstream_chat(emulator: ServerProcess, nickname: str = "Cold") -> str:
    """A chat created directly upstream, which chat-bff has never seen (a cold cache)."""
    answer = httpx.post(
        emulator.url + "/api/v2/chats",
        json={"operationName": "RequestChat", "nickname": nickname, "subject": "cold"},
        headers={"ContactCenterId": CONTACT_CENTER_ID},
        timeout=5,
    )
    answer.raise_for_status()
    upstream_id: str = answer.json()["id"]
    return upstream_id
