"""Accounting, the control API, agent puppeteering, idle disconnect, cookies and lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import socket

import httpx
import pytest
import uvicorn

from app.emulator import (
    ChatStateError,
    Emulator,
    EmulatorConfig,
    Faults,
    UnknownChatError,
    create_emulator_app,
)

from .inprocess import CC_ID, Harness, HarnessFactory, eventually


async def test_counter_and_log_cover_upstream_requests_only(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    await harness.client.get(f"/api/v2/chats/{chat_id}")
    await harness.client.get(f"/api/v2/chats/{chat_id}/messages", params={"index": 1})
    await harness.op(chat_id, "SendMessage", text="hello")
    await harness.client.get("/_emulator/stats")  # control traffic: not counted
    await harness.client.get("/api/v2/chats/ghost")

    emulator = harness.emulator
    assert emulator.request_count == 5
    log = emulator.requests()
    assert [(r.method, r.path, r.chat_id) for r in log] == [
        ("POST", "/api/v2/chats", chat_id),
        ("GET", f"/api/v2/chats/{chat_id}", chat_id),
        ("GET", f"/api/v2/chats/{chat_id}/messages", chat_id),
        ("POST", f"/api/v2/chats/{chat_id}", chat_id),
        ("GET", "/api/v2/chats/ghost", "ghost"),
    ]
    assert log[2].query == "index=1"
    assert log[3].headers["contactcenterid"] == CC_ID
    assert log[3].headers["content-type"] == "application/json"
    assert b'"text":"hello"' in log[3].body.replace(b" ", b"")
    assert all(a.at <= b.at for a, b in itertools.pairwise(log))

    stats = (await harness.client.get("/_emulator/stats")).json()
    assert stats == {
        "requests": 5,
        "by_chat": {chat_id: 4, "ghost": 1},
        "by_route": {
            "POST /chats": 1,
            "GET /chats/{id}": 2,
            "GET /chats/{id}/messages": 1,
            "POST /chats/{id}": 1,
        },
    }


async def test_request_log_over_http_and_reset(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    await harness.client.get(f"/api/v2/chats/{chat_id}")
    body = (await harness.client.get("/_emulator/requests")).json()
    assert [r["seq"] for r in body["requests"]] == [1, 2]
    assert body["last_seq"] == 2
    first = body["requests"][0]
    assert first["method"] == "POST"
    assert first["chat_id"] == chat_id
    assert '"nickname"' in first["body"]
    assert first["headers"]["contactcenterid"] == CC_ID

    since = (await harness.client.get("/_emulator/requests", params={"since": 1})).json()
    assert [r["seq"] for r in since["requests"]] == [2]

    stats = (await harness.client.post("/_emulator/reset")).json()
    assert stats == {"requests": 0, "by_chat": {}, "by_route": {}}
    assert harness.emulator.request_count == 0
    assert harness.emulator.requests() == []
    assert chat_id in harness.emulator.chats  # chats survive a reset
    await harness.client.get(f"/api/v2/chats/{chat_id}")
    assert [r.seq for r in harness.emulator.requests()] == [3]  # sequence numbers go on


async def test_log_is_bounded(make_harness: HarnessFactory) -> None:
    harness = await make_harness(log_limit=3)
    for _ in range(5):
        await harness.client.get("/api/v2/chats/x")
    assert harness.emulator.request_count == 5
    assert [r.seq for r in harness.emulator.requests()] == [3, 4, 5]
    assert [r.seq for r in harness.emulator.requests(since=4)] == [5]
    harness.emulator.reset_stats()
    assert harness.emulator.request_count == 0


async def test_control_view_of_a_chat(harness: Harness) -> None:
    chat_id = await harness.request_chat(userData={"k": "v"})
    await harness.messages(chat_id, index=None)
    response = await harness.client.get(f"/_emulator/chats/{chat_id}")
    view = response.json()
    assert view["state"] == "WaitingForAgent"
    assert view["nickname"] == "Chris"
    assert view["subject"] == "Order 42"
    assert view["userData"] == {"k": "v"}
    assert view["hidden_cursor"] == 1
    assert view["transcript"][0]["type"] == "ParticipantJoined"
    assert view["cookie_seen_count"] == 1
    assert view["cookie_mismatch_count"] == 0
    assert view["requests"] == 2
    listing = (await harness.client.get("/_emulator/chats")).json()
    assert listing == {"chats": [{"id": chat_id, "state": "WaitingForAgent"}]}
    assert (await harness.client.get("/_emulator/chats/nope")).status_code == 404
    config = (await harness.client.get("/_emulator/config")).json()
    assert config["contact_center_id"] == CC_ID


async def test_agent_puppeteering_over_http(make_harness: HarnessFactory) -> None:
    harness = await make_harness(scripted_agent=False)
    client = harness.client
    chat_id = await harness.request_chat()
    await asyncio.sleep(0.1)
    assert (await harness.chat(chat_id))["state"] == "WaitingForAgent"  # nobody joins

    base = f"/_emulator/chats/{chat_id}/agent"
    assert (await client.post(f"{base}/leave")).status_code == 409  # not in the chat yet
    # Saying something joins first.
    assert (await client.post(f"{base}/say", json={"text": "Hi there"})).json() == {"index": 3}
    assert (await harness.chat(chat_id))["state"] == "Chatting"
    assert (await client.post(f"{base}/join")).status_code == 409  # already in
    assert (await client.post(f"{base}/typing", json={"typing": True})).json() == {"index": 4}
    assert (await client.post(f"{base}/typing", json={"typing": False})).json() == {"index": 5}
    await harness.op(chat_id, "SendMessage", text="thanks")  # no scripted reply
    assert (await client.post(f"{base}/leave")).json() == {"index": 7}
    assert (await client.post(f"{base}/say", json={"text": "x"})).status_code == 409
    assert (await client.post(f"{base}/say", json={"text": ""})).status_code == 422
    assert (await client.post("/_emulator/chats/nope/agent/join")).status_code == 404

    messages = await harness.messages(chat_id)
    assert [(m["type"], m["from"]["type"]) for m in messages] == [
        ("ParticipantJoined", "Customer"),
        ("ParticipantJoined", "Agent"),
        ("Text", "Agent"),
        ("TypingStarted", "Agent"),
        ("TypingStopped", "Agent"),
        ("Text", "Customer"),
        ("ParticipantLeft", "Agent"),
    ]
    assert (await harness.chat(chat_id))["state"] == "Idle"


async def test_agent_join_with_greeting_over_http(make_harness: HarnessFactory) -> None:
    harness = await make_harness(scripted_agent=False)
    chat_id = await harness.request_chat()
    response = await harness.client.post(
        f"/_emulator/chats/{chat_id}/agent/join", json={"greet": True}
    )
    assert response.json() == {"index": 4}
    types = [m["type"] for m in await harness.messages(chat_id)]
    assert types == ["ParticipantJoined", "ParticipantJoined", "Notice", "Text"]


async def test_agent_say_in_python(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    assert await harness.emulator.agent_say(chat_id, "Hi from Python") == 3
    with pytest.raises(UnknownChatError):
        await harness.emulator.agent_say("nope", "x")
    await harness.op(chat_id, "Complete")
    with pytest.raises(ChatStateError):
        await harness.emulator.agent_say(chat_id, "too late")


async def test_idle_customer_is_disconnected(make_harness: HarnessFactory) -> None:
    harness = await make_harness(idle_disconnect_s=0.25, agent_join_delay_s=0.02)
    quiet = await harness.request_chat("Quiet")
    busy = await harness.request_chat("Busy")
    view = harness.emulator.view
    for _ in range(8):  # 0.4 s of polling keeps `busy` alive
        await harness.client.get(f"/api/v2/chats/{busy}/messages", params={"index": 1})
        await asyncio.sleep(0.05)

    assert view(quiet)["state"] == "Idle"
    assert view(quiet)["customer_disconnected"] is True
    last = view(quiet)["transcript"][-1]
    assert (last["type"], last["from"]["type"]) == ("ParticipantLeft", "Customer")
    assert view(busy)["state"] == "Chatting"
    assert (await harness.op(quiet, "SendMessage", text="back")).status_code == 400


async def test_idle_disconnect_is_checked_on_arrival_too(make_harness: HarnessFactory) -> None:
    harness = await make_harness(idle_disconnect_s=0.1, scripted_agent=False)
    chat_id = await harness.request_chat()
    harness.emulator.chat(chat_id).last_activity -= 1.0  # as if the watchdog were late
    response = await harness.op(chat_id, "SendMessage", text="still there?")
    assert response.status_code == 400
    assert harness.emulator.view(chat_id)["customer_disconnected"] is True


async def test_disconnect_over_http(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    response = await harness.client.post(f"/_emulator/chats/{chat_id}/disconnect")
    assert response.json() == {"index": 2}
    assert (await harness.client.post(f"/_emulator/chats/{chat_id}/disconnect")).status_code == 409


async def test_complete_while_waiting_is_undone_by_the_agent_joining(
    make_harness: HarnessFactory,
) -> None:
    harness = await make_harness(agent_join_delay_s=0.1)
    chat_id = await harness.request_chat()
    assert (await harness.op(chat_id, "Complete")).json() == {"statusCode": 0}
    assert (await harness.chat(chat_id))["state"] == "Idle"

    async def chatting() -> bool:
        return bool((await harness.chat(chat_id))["state"] == "Chatting")

    await eventually(chatting)
    types = [(m["type"], m["from"]["type"]) for m in await harness.messages(chat_id)]
    assert types[:3] == [
        ("ParticipantJoined", "Customer"),
        ("ParticipantLeft", "Customer"),
        ("ParticipantJoined", "Agent"),
    ]
    assert harness.emulator.view(chat_id)["completed_while_waiting"] is True


async def test_complete_while_chatting_stops_the_agent(harness: Harness) -> None:
    chat_id = await harness.request_chat()
    await harness.wait_for_message(chat_id, type="Text", from_type="Agent")
    await harness.op(chat_id, "SendMessage", text="question")
    await harness.op(chat_id, "Complete")
    count = len(await harness.messages(chat_id))
    await asyncio.sleep(0.15)  # longer than the scripted reply takes
    assert len(await harness.messages(chat_id)) == count
    assert (await harness.chat(chat_id))["state"] == "Idle"


async def test_session_cookie_is_recorded_never_required(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "C", "subject": "S"}
    )
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("EMUSESSION=")
    assert set_cookie.endswith("; Path=/; HttpOnly")
    chat_id = response.json()["id"]
    cookie = harness.emulator.view(chat_id)["cookie"]

    await harness.chat(chat_id)  # the client's jar sends it back
    no_jar = harness.new_client()
    assert (await no_jar.get(f"/api/v2/chats/{chat_id}")).status_code == 200
    await no_jar.get(f"/api/v2/chats/{chat_id}", headers={"Cookie": "EMUSESSION=forged"})
    await no_jar.get(f"/api/v2/chats/{chat_id}", headers={"Cookie": f"a=1; EMUSESSION={cookie}"})

    view = harness.emulator.view(chat_id)
    assert view["cookie_seen_count"] == 2
    assert view["cookie_missing_count"] == 1
    assert view["cookie_mismatch_count"] == 1


async def test_one_cookie_jar_for_two_chats_shows_mismatches(harness: Harness) -> None:
    first = await harness.request_chat()
    await harness.request_chat()  # overwrites the jar's EMUSESSION
    await harness.chat(first)
    assert harness.emulator.view(first)["cookie_mismatch_count"] == 1


async def test_no_cookie_when_disabled(make_harness: HarnessFactory) -> None:
    harness = await make_harness(set_cookie=False)
    response = await harness.client.post(
        "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "C", "subject": "S"}
    )
    assert "set-cookie" not in response.headers
    await harness.chat(response.json()["id"])
    view = harness.emulator.view(response.json()["id"])
    assert (view["cookie_seen_count"], view["cookie_missing_count"]) == (0, 0)


async def test_agents_are_assigned_round_robin(make_harness: HarnessFactory) -> None:
    harness = await make_harness(agent_names=("Ann", "Bob"), scripted_agent=False)
    names = []
    for _ in range(3):
        chat_id = await harness.request_chat()
        names.append(harness.emulator.view(chat_id)["agent"])
    assert names == ["Ann", "Bob", "Ann"]


async def test_aclose_cancels_every_task() -> None:
    emulator = Emulator(EmulatorConfig(agent_join_delay_s=0.05, contact_center_id=None))
    app = create_emulator_app(emulator)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
        response = await client.post(
            "/api/v2/chats", json={"operationName": "RequestChat", "nickname": "C", "subject": "S"}
        )
        chat_id = response.json()["id"]
        await emulator.aclose()
        await asyncio.sleep(0.1)
        assert emulator.view(chat_id)["state"] == "WaitingForAgent"  # the agent never came
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("emulator:")]


async def test_nothing_runs_before_use_and_lifespan_closes() -> None:
    emulator = Emulator()
    app = create_emulator_app(emulator)
    assert app.state.emulator is emulator
    assert create_emulator_app().state.emulator is not emulator
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
            response = await client.post(
                "/api/v2/chats",
                headers={"ContactCenterId": "demo-contact-center"},
                json={"operationName": "RequestChat", "nickname": "C", "subject": "S"},
            )
            assert response.status_code == 200
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("emulator:")]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("emulator:")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_under_a_real_server_drop_and_hang() -> None:
    emulator = Emulator(EmulatorConfig(contact_center_id=None, agent_join_delay_s=0.05))
    port = _free_port()
    config = uvicorn.Config(
        create_emulator_app(emulator),
        host="127.0.0.1",
        port=port,
        http="h11",
        ws="none",
        lifespan="on",
        log_level="critical",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await eventually(started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1) as client:
            response = await client.post(
                "/api/v2/chats",
                json={"operationName": "RequestChat", "nickname": "C", "subject": "S"},
            )
            chat_id = response.json()["id"]
            emulator.set_faults(Faults(drop_connection=True, remaining=1))
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"/api/v2/chats/{chat_id}")
            emulator.set_faults(Faults(hang=True, remaining=1))
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"/api/v2/chats/{chat_id}", timeout=0.2)
            response = await client.get(f"/api/v2/chats/{chat_id}")
            assert response.status_code == 200
            assert response.json()["chat"]["id"] == chat_id
            # The session cookie came back from the real client's jar.
            assert emulator.view(chat_id)["cookie_seen_count"] >= 1
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("emulator:")]
