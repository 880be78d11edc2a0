"""`chat-bff demo` (what `make demo` runs): the service with the emulator reached in-process
through httpx's ASGI transport instead of the network. A whole chat, on its own defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.emulator.agent import REPLIES, bot_line
from app.emulator.pacing import DEMO, typing_range
from harness.chats import post, start_chat
from harness.servers import ServerProcess


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    server = ServerProcess("demo").start()
    yield server
    server.stop()


def wait_for_text(client: httpx.Client, handle: str, sender: str, after: int) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": after, "wait": 5})
        assert answer.status_code == 200, answer.text
        for message in answer.json()["messages"]:
            if message["type"] == "Text" and message["from"]["type"] == sender:
                found: dict[str, object] = message
                return found
    raise AssertionError(f"no {sender} text after index {after}")


def test_demo_runs_a_whole_chat_in_one_process(demo: ServerProcess) -> None:
    with httpx.Client(base_url=demo.url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "widget.js" in page.text
        handle = start_chat(client)
        greeting = wait_for_text(client, handle, "Agent", 1)
        assert client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"] == "Chatting"
        assert post(client, handle, "SendMessage", text="hello demo").status_code == 200
        index = int(str(greeting["index"]))
        mine = wait_for_text(client, handle, "Customer", index + 1)
        assert mine["text"] == "hello demo"
        reply = wait_for_text(client, handle, "Agent", int(str(mine["index"])) + 1)
        assert reply["text"]
        assert post(client, handle, "Complete").status_code == 200
        assert client.get(f"/api/v2/chats/{handle}").json()["chat"]["state"] == "Idle"
        assert post(client, handle, "SendMessage", text="too late").status_code == 409
        assert client.get("/readyz").status_code == 200


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_refuse_an_unknown_setting_alike(command: str) -> None:
    """A typo would leave a default in force: both commands name it and stop."""
    done = run_cli(command, "--port", "1", env={"BFF_POLL_CEILNG_S": "3"})
    assert done.returncode == 2
    assert "BFF_POLL_CEILNG_S is not a setting (did you mean BFF_POLL_CEILING_S?)" in done.stderr


def test_the_demo_reads_known_settings() -> None:
    """The demo honours what it does not fix: here JSON log lines instead of its text."""
    server = ServerProcess("demo", env={"BFF_LOG_FORMAT": "json"}).start()
    try:
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    startup = next(line for line in lines if "bus" in line)
    assert startup["bus"] == "memory (one process)"


def test_help_names_every_option_and_the_required_settings() -> None:
    top = run_cli("--help")
    assert top.returncode == 0
    assert "Owns" not in top.stdout  # not a code comment
    for command in ("serve", "demo", "emulator"):
        assert command in top.stdout
        done = run_cli(command, "--help")
        assert done.returncode == 0
        lines = done.stdout.splitlines()
        options = [i for i, line in enumerate(lines) if line.startswith("  --")]
        assert options, done.stdout
        # Every option says what it does, not just its name (on its line or the next).
        for i in options:
            said = len(lines[i].split()) > 2 or lines[i + 1].startswith(" " * 8)
            assert said, lines[i]
    serve = run_cli("serve", "--help").stdout
    for required in ("BFF_UPSTREAM_URL", "BFF_CONTACT_CENTER_ID", "BFF_SECRET_KEY"):
        assert required in serve


def transcript(client: httpx.Client, handle: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def gap_s(earlier: dict[str, Any], later: dict[str, Any]) -> float:
    # utcTime is whole milliseconds, cut rather than rounded: allow one.
    return (int(later["utcTime"]) - int(earlier["utcTime"]) + 1) / 1000


def test_the_demo_agent_types_before_replying_at_a_human_pace(demo: ServerProcess) -> None:
    """The demo's upstream: a bot line first with no typing notice, then the agent's typed
    reply announced by a typing notice standing at least as long as the demo pace's least."""
    with httpx.Client(base_url=demo.url, timeout=30) as client:
        handle = start_chat(client, "Robin")
        greeting = wait_for_text(client, handle, "Agent", 1)
        assert post(client, handle, "SendMessage", text="Where is my parcel?").status_code == 200
        mine = wait_for_text(client, handle, "Customer", int(str(greeting["index"])) + 1)
        # What a viewer is given after the customer's message, batch by batch: the typing
        # notice comes in a batch of its own, before the reply.
        batches: list[list[dict[str, Any]]] = []
        after = int(str(mine["index"])) + 1
        while not any(m["type"] == "Text" for batch in batches for m in batch):
            answer = client.get(
                f"/api/v2/chats/{handle}/messages", params={"index": after, "wait": 15}
            )
            got = answer.json()["messages"]
            assert got, "nothing within 15 s"
            batches.append(got)
            after = int(got[-1]["index"]) + 1
        entries = transcript(client, handle)

    first = [m["type"] for m in batches[0]]
    assert first[0] == "TypingStarted" and "Text" not in first, batches
    by_index = {int(m["index"]): m for m in entries}
    joined = next(m for m in entries if m["type"] == "ParticipantJoined")  # the customer
    bot = next(m for m in entries if m["from"]["type"] == "External" and m["type"] == "Text")
    agent_joined = next(
        m for m in entries if m["type"] == "ParticipantJoined" and m["from"]["type"] == "Agent"
    )
    assert bot["text"] == bot_line("Robin")
    assert int(bot["index"]) < int(agent_joined["index"])
    before_bot = [by_index[i] for i in range(1, int(bot["index"]))]
    assert all(not m["type"].startswith("Typing") for m in before_bot), before_bot
    assert DEMO.bot_s is not None
    assert gap_s(joined, bot) >= DEMO.bot_s[0]
    assert gap_s(joined, agent_joined) >= DEMO.join_s[0]

    sent = next(m for m in entries if m.get("text") == "Where is my parcel?")
    rest = [m for m in entries if int(m["index"]) > int(sent["index"])]
    typing, reply = rest[0], rest[1]
    assert (typing["type"], typing["from"]["type"]) == ("TypingStarted", "Agent")
    assert (reply["type"], reply["from"]["type"], reply["text"]) == ("Text", "Agent", REPLIES[0])
    assert gap_s(sent, typing) >= DEMO.think_s[0]
    assert gap_s(typing, reply) >= typing_range(DEMO, REPLIES[0])[0]
    assert rest[2]["type"] == "TypingStopped"


@pytest.mark.parametrize(
    ("args", "name", "join_s", "think_s"),
    [
        ((), "fixed", [2.0, 2.0], [1.0, 1.0]),
        (("--pace", "demo"), "demo", [3.0, 6.0], [1.0, 2.0]),
        (("--pace", "model", "--agent-join-delay", "3600"), "model", [3600, 3600], [8.0, 40.0]),
    ],
)
def test_the_emulator_runs_at_the_pace_asked_for(
    args: tuple[str, ...], name: str, join_s: list[float], think_s: list[float]
) -> None:
    server = ServerProcess("emulator", args=args).start()
    try:
        pace = httpx.get(server.url + "/_emulator/config", timeout=10).json()["pace"]
    finally:
        server.stop()
    assert (pace["name"], pace["join_s"], pace["think_s"]) == (name, join_s, think_s)
