"""A webhook receiver on a loopback port, as an operator's backend would run one.

It verifies every delivery's signature with the `standardwebhooks` library (an implementation
of the scheme we did not write), records it, and answers as the test tells it: a queue of
statuses, or a stop (the port refuses connections) to play a receiver that is down.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from harness.servers import free_port


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    at: float

    @property
    def msg_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, secret: str | None = None, port: int | None = None) -> None:
        self.secret = secret or new_secret()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.deliveries: list[Delivery] = []
        # Statuses to answer next, in order (then 200); a (status, headers) pair adds headers.
        self.answers: list[int | tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._lock:
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                    status, extra = answer if isinstance(answer, tuple) else (answer, {})
                    if not verified:
                        status = 401
                    receiver.deliveries.append(
                        Delivery(headers, body, verified, status, time.monotonic())
                    )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def accepted(self) -> list[Delivery]:
        """Deliveries answered 2xx (signature verified)."""
        return [d for d in self.all() if 200 <= d.status < 300]

    def wait_for(
        self, condition: Callable[[list[Delivery]], bool], timeout_s: float = 15.0
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = self.all()
            if condition(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout_s} s; deliveries: {self.all()}")

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
