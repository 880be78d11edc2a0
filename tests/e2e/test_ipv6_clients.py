"""One IPv6 /64 is one client, for every per-client limit, from real IPv6 source addresses.

A subscriber gets a /64 (or more): 2^64 addresses. Keyed by address, about 200 of them fill
`BFF_MAX_STREAMS` and `/readyz` takes the instance out of the load balancer; keyed by prefix
they count as one client. chat-bff listens on `::` and the test connects from
200 addresses of one ULA /64 put on the loopback interface (root, `ip -6 addr add`), as
clients of one home network reach a server: RequestChat, SendMessage, leaving a message and
streams are each limited as for one client, `/readyz` stays 200, and a neighbouring /64 is
another client. Without root the addresses cannot be set up: skipped locally, failed on CI.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from harness.servers import ServerProcess, bff_env
from tests.components import missing_component
from tests.webhook_receiver import new_secret

ADDRESSES = 200
CREATE_BURST = 3
SEND_BURST = 4
STREAMS_PER_CLIENT = 5
MAX_STREAMS = 100
MESSAGE = {"nickname": "Sam", "email": "sam@example.com", "text": "call me"}


@pytest.fixture(scope="module")
def site() -> Iterator[list[ipaddress.IPv6Network]]:
    """Three neighbouring /64s of a random ULA /48, with addresses on `lo`: 200 in the first
    two, one in the third (a random prefix: other test runs on this host use their own)."""
    ip = shutil.which("ip")
    if ip is None:
        missing_component("the ip command (iproute2) is not installed")
    base = int(ipaddress.IPv6Address("fd00::")) | secrets.randbits(40) << 80
    nets = [ipaddress.IPv6Network((base | n << 64, 64)) for n in (1, 2, 3)]
    hosts = [
        f"{net[secrets.randbits(48) + 2]}"
        for net, count in zip(nets, (ADDRESSES, ADDRESSES, 1), strict=True)
        for _ in range(count)
    ]
    batch = "".join(f"address add {h}/128 dev lo nodad\n" for h in hosts)
    added = subprocess.run([ip, "-6", "-batch", "-"], input=batch.encode(), capture_output=True)
    if added.returncode != 0:
        subprocess.run([ip, "-6", "-force", "-batch", "-"], input=_deleting(hosts).encode())
        missing_component(f"cannot add IPv6 addresses to lo: {added.stderr.decode().strip()}")
    try:
        yield nets
    finally:
        subprocess.run(
            [ip, "-6", "-force", "-batch", "-"], input=_deleting(hosts).encode(), check=False
        )


def _deleting(hosts: list[str]) -> str:
    return "".join(f"address del {h}/128 dev lo\n" for h in hosts)


def addresses_of(net: ipaddress.IPv6Network) -> list[str]:
    out = subprocess.run(["ip", "-6", "-o", "addr", "show", "dev", "lo"], capture_output=True)
    found = []
    for line in out.stdout.decode().splitlines():
        address = ipaddress.IPv6Address(line.split()[3].partition("/")[0])
        if address in net:
            found.append(str(address))
    return sorted(found)


@pytest.fixture(scope="module")
def dual_stack_bff(emulator: ServerProcess) -> Iterator[ServerProcess]:
    receiver_down = "http://127.0.0.1:9/"  # nothing listens: left messages wait in the outbox
    unstarted = ServerProcess(
        "serve",
        args=("--host", "::"),
        env={
            **_env(emulator.url),
            "BFF_OFFLINE_WEBHOOK_URL": receiver_down,
            "BFF_OFFLINE_WEBHOOK_SECRET": new_secret(),
        },
    )
    # asyncio listens on `::` for IPv6 only (IPV6_V6ONLY), so it is checked over IPv6.
    unstarted.url = f"http://[::1]:{unstarted.port}"
    server = unstarted.start()
    yield server
    server.stop()


def _env(upstream_url: str) -> dict[str, str]:
    return bff_env(
        upstream_url,
        BFF_CHAT_CREATE_BURST=str(CREATE_BURST),
        BFF_CHAT_CREATE_PER_MINUTE="0.01",  # no token comes back during the test
        BFF_SEND_BURST=str(SEND_BURST),
        BFF_SEND_PER_MINUTE="0.01",
        BFF_MAX_STREAMS_PER_IP=str(STREAMS_PER_CLIENT),
        BFF_MAX_STREAMS_PER_CHAT="1000",
        BFF_MAX_STREAMS=str(MAX_STREAMS),
    )


def from_address(server: ServerProcess, source: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://[::1]:{server.port}",
        transport=httpx.HTTPTransport(local_address=source),
        timeout=10,
    )


def statuses(
    server: ServerProcess, sources: list[str], method: str, path: str, body: object
) -> list[int]:
    found = []
    for source in sources:
        with from_address(server, source) as client:
            found.append(client.request(method, path, json=body).status_code)
    return found


def request_chat(nickname: str) -> dict[str, str]:
    return {"operationName": "RequestChat", "nickname": nickname, "subject": "ipv6"}


@contextlib.contextmanager
def streams(server: ServerProcess, sources: list[str], handle: str) -> Iterator[list[int]]:
    """An SSE stream of `handle` opened from each source address; the status of each, with
    the accepted ones held open until the block ends."""
    sockets, found = [], []
    request = (
        f"GET /api/v2/chats/{handle}/events HTTP/1.1\r\nHost: chat\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    try:
        for source in sources:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(10)
            sock.bind((source, 0))
            sock.connect(("::1", server.port))
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, "connection closed before a status line"
                head += chunk
            found.append(int(head.split(b" ", 2)[1]))
        yield found
    finally:
        for sock in sockets:
            sock.close()


def test_one_ipv6_prefix_is_one_client_for_every_limit(
    site: list[ipaddress.IPv6Network], dual_stack_bff: ServerProcess
) -> None:
    home, neighbour_home, other = (addresses_of(net) for net in site)
    assert len(home) == ADDRESSES and len(neighbour_home) == ADDRESSES and len(other) == 1
    bff = dual_stack_bff

    created = statuses(bff, home, "POST", "/api/v2/chats", request_chat("Many"))
    assert created.count(200) == CREATE_BURST, created
    assert set(created[CREATE_BURST:]) == {429}

    with from_address(bff, other[0]) as client:  # another /64: another client
        answer = client.post("/api/v2/chats", json=request_chat("Neighbour"))
        assert answer.status_code == 200, answer.text
        handle = answer.json()["id"]
        assert client.get(f"/api/v2/chats/{handle}").status_code == 200

    sent = statuses(
        bff,
        home,
        "POST",
        f"/api/v2/chats/{handle}",
        {"operationName": "SendStartTypingNotification"},
    )
    assert sent.count(200) == SEND_BURST, sent
    assert set(sent[SEND_BURST:]) == {429}

    left = statuses(bff, neighbour_home, "POST", "/api/v2/offline-messages", MESSAGE)
    assert left.count(202) == CREATE_BURST, left
    assert set(left[CREATE_BURST:]) == {429}

    with streams(bff, home, handle) as opened:
        assert opened.count(200) == STREAMS_PER_CLIENT, opened
        assert set(opened[STREAMS_PER_CLIENT:]) == {429}
        ready = httpx.get(bff.url + "/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["streams"] == STREAMS_PER_CLIENT
        with streams(bff, other, handle) as elsewhere:  # the neighbour is not held back
            assert elsewhere == [200]
