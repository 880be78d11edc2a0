"""`BFF_TRUSTED_PROXIES` decides whose X-Forwarded-For counts, however the app is served.

A plain `uvicorn app.main:create_app --factory` turns uvicorn's proxy headers on by default,
trusting 127.0.0.1 and ::1: without a guard, every request from the host could name its own
client address in X-Forwarded-For and escape every per-client limit. Here the real uvicorn
command line serves the app in a subprocess, and requests from 127.0.0.1 with a new forged
address each must count as one client; with the loopback trusted, as the forwarded clients.
The last test serves the app as gunicorn's uvicorn worker does (uvicorn's Config around an app
built outside it, with proxy headers on), where only the app's own check can help.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from harness.servers import ServerProcess, bff_env

CREATE_BURST = 2
ATTEMPTS = 6


def limits_env(upstream_url: str, trusted: str) -> dict[str, str]:
    return bff_env(
        upstream_url,
        BFF_TRUSTED_PROXIES=trusted,
        BFF_CHAT_CREATE_BURST=str(CREATE_BURST),
        # No token comes back while the test runs.
        BFF_CHAT_CREATE_PER_MINUTE="0.01",
    )


@contextmanager
def served(argv: list[str], env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess("uvicorn", env=env, argv=argv).start()
    try:
        yield server
    finally:
        server.stop()


def uvicorn_cli() -> list[str]:
    """uvicorn's own command line, with its defaults (proxy headers on, 127.0.0.1 trusted)."""
    return [
        *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", "{port}"),
    ]


def uvicorn_wrapping_a_built_app() -> list[str]:
    """The app built first, then handed to uvicorn's Config with proxy headers on for the
    loopback (as gunicorn's uvicorn worker does): uvicorn never calls our factory."""
    program = (
        "import sys, uvicorn\n"
        "from app.main import create_app\n"
        "config = uvicorn.Config(create_app(), host='127.0.0.1', port=int(sys.argv[1]),\n"
        "                        proxy_headers=True, forwarded_allow_ips='127.0.0.1')\n"
        "uvicorn.Server(config).run()\n"
    )
    return [sys.executable, "-c", program, "{port}"]


def creations(server: ServerProcess) -> list[int]:
    """RequestChat from 127.0.0.1, each naming another client in X-Forwarded-For."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(ATTEMPTS):
            answer = client.post(
                "/api/v2/chats",
                json={"operationName": "RequestChat", "nickname": "Forger", "subject": "x"},
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
            )
            statuses.append(answer.status_code)
    return statuses


@pytest.mark.parametrize(
    ("argv", "trusted"),
    [
        (uvicorn_cli(), ""),
        # Another proxy trusted, not the loopback: only uvicorn applying our setting (not its
        # own default) keeps the loopback's forged header from counting.
        (uvicorn_cli(), "10.0.0.0/8"),
        (uvicorn_wrapping_a_built_app(), ""),
    ],
    ids=["uvicorn-cli", "uvicorn-cli-other-proxy", "uvicorn-config-around-app"],
)
def test_forged_forwarded_for_from_an_untrusted_peer_counts_as_one_client(
    emulator: ServerProcess, argv: list[str], trusted: str
) -> None:
    with served(argv, limits_env(emulator.url, trusted)) as server:
        statuses = creations(server)
    assert statuses == [200] * CREATE_BURST + [429] * (ATTEMPTS - CREATE_BURST), statuses


def test_forwarded_clients_count_apart_behind_a_trusted_proxy(emulator: ServerProcess) -> None:
    with served(uvicorn_cli(), limits_env(emulator.url, "127.0.0.1")) as server:
        statuses = creations(server)
    assert statuses == [200] * ATTEMPTS, statuses
