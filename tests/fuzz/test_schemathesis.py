"""schemathesis against the OpenAPI document of a running chat-bff (emulator upstream): no
answer >= 500, and every answer documented (status, content type, headers, schema), for
generated valid and invalid requests on every operation, bounded in time.

Handles are half the time real ones (a live chat; a completed one for the stream, which
would otherwise never end), so requests reach past the handle check into the service."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.servers import ServerProcess, free_port, start_bff

# The whole run, generation phases included; fuzzing repeats until it is spent.
BUDGET_S = int(os.environ.get("FUZZ_BUDGET_S", "30"))
SEED = os.environ.get("FUZZ_SEED", "20261128")
CHAT = {"operationName": "RequestChat", "nickname": "Fuzz", "subject": "schemathesis"}


@pytest.fixture(scope="module")
def target(emulator: ServerProcess) -> Iterator[ServerProcess]:
    server = start_bff(
        emulator.url,
        BFF_CHAT_CREATE_PER_MINUTE="60000",
        BFF_CHAT_CREATE_BURST="100000",
        BFF_SEND_PER_MINUTE="60000",
        BFF_SEND_BURST="100000",
        BFF_MAX_STREAMS_PER_IP="1000",
        # Long-polls are fuzzed too; a second of waiting each keeps the run short.
        BFF_LONG_POLL_MAX_S="1",
        # Leaving a message, and a survey, need somewhere to deliver it (else 503 by design).
        # Nothing listens there: deliveries are retried in the background, out of sight.
        BFF_OFFLINE_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/left-messages",
        BFF_OFFLINE_WEBHOOK_SECRET="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        BFF_SURVEY_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/surveys",
        BFF_SURVEY_WEBHOOK_SECRET="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    yield server
    server.stop()


def _config(target: ServerProcess, path: Path) -> Path:
    with httpx.Client(base_url=target.url, timeout=10) as http:
        live = http.post("/api/v2/chats", json=CHAT).json()["id"]
        ended = http.post("/api/v2/chats", json=CHAT).json()["id"]
        done = http.post(f"/api/v2/chats/{ended}", json={"operationName": "Complete"})
        assert done.status_code == 200, done.text
    path.write_text(
        f"""
# Every check, except the resource-lifecycle and authorization ones: they need links and
# credentials the API does not have (a handle is the credential).
[checks]
use_after_free.enabled = false
ensure_resource_availability.enabled = false
ignored_auth.enabled = false
object_level_authorization.enabled = false

[dictionaries.handles]
values = ["{live}", "{ended}"]

[dictionaries.ended]
values = ["{ended}"]

[parameters]
"path.handle" = {{ dictionary = "handles", probability = 0.5 }}

[[operations]]
include-path = "/api/v2/chats/{{handle}}/events"
parameters = {{ "path.handle" = {{ dictionary = "ended", probability = 0.5 }} }}
# The stream's events are documented for SDK generators (the body as text, each event in
# `x-itemSchema`, OpenAPI 3.2's itemSchema in this 3.1 document), which schemathesis reads as
# "every event is a string". The events themselves are checked by tests/e2e.
checks.response_schema_conformance.enabled = false

# A retry that reuses an Idempotency-Key with another body is refused by design (the
# draft's rule), which no schema can express: valid-looking POSTs may be refused.
[[operations]]
include-method = "POST"
checks.positive_data_acceptance.enabled = false
# The coverage phase walks every boundary of the bodies' schemas (texts of 4000 characters
# under a pattern with a look-ahead) and runs past any time budget; fuzzing covers them.
phases.coverage.enabled = false

# The longest long-poll is configuration (1 s here, to keep the run short), which the
# schema of `wait` cannot state.
[[operations]]
include-path = "/api/v2/chats/{{handle}}/messages"
checks.positive_data_acceptance.enabled = false
"""
    )
    return path


def test_every_answer_is_documented_and_none_is_a_server_error(
    target: ServerProcess, tmp_path: Path
) -> None:
    config = _config(target, tmp_path / "schemathesis.toml")
    logged = len(target.logs())
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        target.url + "/openapi.json",
        "--max-time",
        str(BUDGET_S),
        "--seed",
        SEED,
        # One worker: Hypothesis describes strategies with `ast`, which Python 3.11 cannot
        # run from two threads at once ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--warnings",
        "off",
        "--no-color",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=BUDGET_S + 120, cwd=tmp_path
    )
    (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
    failures = run.stdout.find("FAILURES")
    report = run.stdout[max(0, failures) :][:8_000] + run.stdout[-1_500:] + run.stderr[-1_000:]
    assert run.returncode == 0, report
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated is not None and int(generated.group(1)) >= 200, report
    tail = target.logs()[logged:]
    assert "Traceback" not in tail
    assert not re.search(r"access \S+ \S+ 5\d\d ", tail), "a 5xx was answered"
