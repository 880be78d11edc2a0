"""`BFF_INTERNAL_PORT` on a real `chat-bff serve` (issue 18, finding 8): the internal port
serves /healthz, /readyz and /metrics and nothing else; the public port serves everything but
/metrics; the two ports cannot be the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from harness.chats import start_chat
from harness.servers import ServerProcess, bff_env, free_port, start_bff


@pytest.fixture(scope="module")
def split(emulator: ServerProcess) -> Iterator[tuple[ServerProcess, str]]:
    internal = free_port()
    server = start_bff(emulator.url, BFF_INTERNAL_PORT=str(internal))
    yield server, f"http://127.0.0.1:{internal}"
    server.stop()


def test_the_internal_port_serves_probes_and_metrics_only(
    split: tuple[ServerProcess, str],
) -> None:
    _, internal = split
    with httpx.Client(base_url=internal, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        assert http.head("/readyz").status_code == 200
        assert http.get("/readyz/").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "bff_build_info" in metrics.text
        for method, path in [
            ("GET", "/"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
            ("GET", "/static/widget.js"),
            ("GET", "/api/v2/availability"),
            ("POST", "/api/v2/chats"),
        ]:
            answer = http.request(
                method, path, json={"operationName": "RequestChat"} if method == "POST" else None
            )
            assert answer.status_code == 404, (path, answer.status_code)
            assert answer.json() == {"statusCode": 6, "statusMessage": "Not found"}
            assert answer.headers["cache-control"] == "no-store"


def test_the_public_port_serves_everything_but_metrics(
    split: tuple[ServerProcess, str],
) -> None:
    server, _ = split
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for path in ("/metrics", "/metrics/"):
            answer = http.get(path)
            assert answer.status_code == 404
            assert "bff_" not in answer.text
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200  # load balancers may probe either
        assert http.get("/api/v2/availability").status_code == 200
        assert start_chat(http)


def test_without_an_internal_port_metrics_stay_on_the_one_port(bff: ServerProcess) -> None:
    assert httpx.get(bff.url + "/metrics", timeout=5).status_code == 200


def test_the_internal_port_must_differ_from_the_public_one(emulator: ServerProcess) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("BFF_")},
            **bff_env(emulator.url, BFF_INTERNAL_PORT=str(port)),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "BFF_INTERNAL_PORT: must differ from --port" in done.stderr


def test_both_ports_close_at_sigterm(emulator: ServerProcess) -> None:
    internal = free_port()
    server = start_bff(emulator.url, BFF_INTERNAL_PORT=str(internal))
    assert "for /healthz, /readyz and /metrics only" in server.logs()
    # As with one port: uvicorn drains, then re-raises the signal it caught.
    assert server.stop() == -signal.SIGTERM
    assert "Traceback" not in server.logs()
    for port in (server.port, internal):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
