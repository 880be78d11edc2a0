"""The contact-center id goes upstream on every call and nowhere else; client credentials never
go upstream."""

from __future__ import annotations

import httpx

from harness.chats import post, start_chat
from harness.emulator import EmulatorControl
from harness.servers import CONTACT_CENTER_ID, ServerProcess

HOSTILE_HEADERS = {
    "Authorization": "Bearer stolen-agent-token",
    "Cookie": "EMUSESSION=forged; other=1",
    "ContactCenterId": "someone-elses-center",
}


def test_every_upstream_call_carries_our_id_and_no_client_credentials(
    client: httpx.Client, control: EmulatorControl
) -> None:
    control.reset()
    client.headers.update(HOSTILE_HEADERS)
    handle = start_chat(client)
    client.get(f"/api/v2/chats/{handle}")
    client.get(f"/api/v2/chats/{handle}/messages")
    client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
    assert post(client, handle, "SendStartTypingNotification").status_code == 200
    assert post(client, handle, "SendMessage", text="hi").status_code == 200
    assert post(client, handle, "Complete").status_code == 200

    log = control.requests()
    # Every write went upstream; reads are served by the poller's GETs.
    assert sum(1 for r in log if r["method"] == "POST") >= 4
    assert any(r["method"] == "GET" for r in log)
    for entry in log:
        headers = entry["headers"]
        assert isinstance(headers, dict)
        assert headers.get("contactcenterid") == CONTACT_CENTER_ID
        assert "authorization" not in headers
        assert "forged" not in headers.get("cookie", "")
        assert "other=1" not in headers.get("cookie", "")


def _assert_no_secret(response: httpx.Response) -> None:
    assert CONTACT_CENTER_ID not in response.text
    for name, value in response.headers.items():
        assert CONTACT_CENTER_ID not in value, name


def test_no_response_ever_contains_the_contact_center_id(
    client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    responses = [
        client.get(f"/api/v2/chats/{handle}"),
        client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}),
        client.get("/api/v2/chats/not-a-handle"),
        client.post("/api/v2/chats", content=b"{", headers={"Content-Type": "application/json"}),
        client.get("/openapi.json"),
        client.get("/metrics"),
        client.get("/readyz"),
        client.get("/healthz"),
    ]
    control.faults(error_status=500, error_body_kind="text")
    responses.append(client.get(f"/api/v2/chats/{handle}"))
    control.faults(error_status=400, error_body_kind="json")
    responses.append(post(client, handle, "SendMessage", text="x"))
    for response in responses:
        _assert_no_secret(response)


def test_chat_ids_in_responses_are_handles(client: httpx.Client, control: EmulatorControl) -> None:
    handle = start_chat(client)
    upstream_ids = {str(r["chat_id"]) for r in control.requests() if r.get("chat_id")}
    chat = client.get(f"/api/v2/chats/{handle}").json()["chat"]
    assert chat["id"] == handle
    assert handle not in upstream_ids
    text = client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1}).text
    text += client.get(f"/api/v2/chats/{handle}").text
    for upstream_id in upstream_ids:
        assert upstream_id not in text


def test_logs_hold_neither_handles_nor_the_contact_center_id(
    bff: ServerProcess, client: httpx.Client, control: EmulatorControl
) -> None:
    handle = start_chat(client)
    client.get(f"/api/v2/chats/{handle}")
    client.get(f"/api/v2/chats/{handle}/messages", params={"index": 1})
    post(client, handle, "SendMessage", text="hello")
    control.faults(outage=True)
    post(client, handle, "SendMessage", text="during an outage")
    control.clear_faults()
    logs = bff.logs()
    assert "/api/v2/chats/{handle}" in logs, "requests are logged by route template"
    assert handle not in logs
    assert CONTACT_CENTER_ID not in logs
