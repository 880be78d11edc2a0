"""Configuration is checked at startup: a clear message and exit status 2, no secret echoed."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from harness.servers import CONTACT_CENTER_ID, SECRET_KEY

GOOD = {
    "BFF_UPSTREAM_URL": "http://127.0.0.1:9",
    "BFF_CONTACT_CENTER_ID": CONTACT_CENTER_ID,
    "BFF_SECRET_KEY": SECRET_KEY,
}

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
WHSEC_2 = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
SURVEY_SECRET = "whsec_" + "c3VydmV5LXdlYmhvb2stc2VjcmV0LWZvci10ZXN0cy0x"

CASES = [
    ("missing upstream", {"BFF_UPSTREAM_URL": None}, "BFF_UPSTREAM_URL"),
    ("bad upstream", {"BFF_UPSTREAM_URL": "not a url"}, "BFF_UPSTREAM_URL"),
    ("missing contact center", {"BFF_CONTACT_CENTER_ID": None}, "BFF_CONTACT_CENTER_ID"),
    ("blank contact center", {"BFF_CONTACT_CENTER_ID": "  "}, "BFF_CONTACT_CENTER_ID"),
    ("missing key", {"BFF_SECRET_KEY": None}, "BFF_SECRET_KEY"),
    ("short key", {"BFF_SECRET_KEY": "short-secret-value"}, "BFF_SECRET_KEY"),
    ("bad redis", {"BFF_REDIS_URL": "http://localhost"}, "BFF_REDIS_URL"),
    ("bad number", {"BFF_UPSTREAM_TIMEOUT_S": "soon"}, "BFF_UPSTREAM_TIMEOUT_S"),
    ("bad origin", {"BFF_ALLOWED_ORIGINS": "shop.example"}, "BFF_ALLOWED_ORIGINS"),
    ("bad proxy", {"BFF_TRUSTED_PROXIES": "10.0.0.0/99"}, "BFF_TRUSTED_PROXIES"),
    ("heartbeat too slow", {"BFF_SSE_HEARTBEAT_S": "40"}, "BFF_SSE_HEARTBEAT_S"),
    # -- per-client limits (issue 18)
    ("ipv6 prefix too short", {"BFF_IPV6_PREFIX_LEN": "16"}, "BFF_IPV6_PREFIX_LEN"),
    ("ipv6 prefix too long", {"BFF_IPV6_PREFIX_LEN": "129"}, "BFF_IPV6_PREFIX_LEN"),
    ("no keep-alive chats", {"BFF_KEEPALIVE_CHATS_PER_CLIENT": "0"}, "KEEPALIVE_CHATS"),
    ("unread grace zero", {"BFF_UNREAD_KEEPALIVE_S": "0"}, "BFF_UNREAD_KEEPALIVE_S"),
    ("tiny transcript cap", {"BFF_TRANSCRIPT_MAX_BYTES": "100"}, "BFF_TRANSCRIPT_MAX_BYTES"),
    (
        "budget below a chat's cap",
        {"BFF_TRANSCRIPT_BUDGET_BYTES": "2000000", "BFF_TRANSCRIPT_MAX_BYTES": "3000000"},
        "transcript_budget_bytes",
    ),
    ("ended retention zero", {"BFF_ENDED_RETENTION_S": "0"}, "BFF_ENDED_RETENTION_S"),
    # -- Redis URL options and failover settings (redis)
    (
        "redis option typo",
        {"BFF_REDIS_URL": "redis+cluster://:short-secret-value@n1:7000?socket_timeot=1"},
        "socket_timeot",
    ),
    (
        "redis CA file missing",
        {"BFF_REDIS_URL": "rediss://h:6380/0?ssl_ca_certs=/no/such/ca.pem"},
        "ssl_ca_certs",
    ),
    (
        "sentinel option, secret not echoed",
        {"BFF_REDIS_URL": "redis+sentinel://s1/m?sentinel_password=short-secret-value&x=1"},
        "BFF_REDIS_URL",
    ),
    ("failover wait too long", {"BFF_REDIS_FAILOVER_WAIT_S": "600"}, "BFF_REDIS_FAILOVER_WAIT_S"),
    ("stream count ttl zero", {"BFF_STREAM_COUNT_TTL_S": "0"}, "BFF_STREAM_COUNT_TTL_S"),
    # -- webhooks and business hours (hooks)
    ("push url, no secret", {"BFF_PUSH_WEBHOOK_URL": "http://h/x"}, "BFF_PUSH_WEBHOOK_SECRET"),
    ("bad push secret", {"BFF_PUSH_WEBHOOK_SECRET": "short-secret-value"}, "whsec_"),
    ("offline url, no secret", {"BFF_OFFLINE_WEBHOOK_URL": "http://h/"}, "OFFLINE_WEBHOOK"),
    (
        "offline url with only the push secret",
        {"BFF_OFFLINE_WEBHOOK_URL": "http://h/", "BFF_PUSH_WEBHOOK_SECRET": WHSEC},
        "needs BFF_OFFLINE_WEBHOOK_SECRET",
    ),
    (
        "offline secret shared with push",
        {"BFF_OFFLINE_WEBHOOK_SECRET": WHSEC_2 + "," + WHSEC, "BFF_PUSH_WEBHOOK_SECRET": WHSEC},
        "must not share a key with BFF_PUSH_WEBHOOK_SECRET",
    ),
    ("offline byte quota too small", {"BFF_OFFLINE_OUTBOX_MAX_BYTES": "1000"}, "MAX_BYTES"),
    ("old outbox setting", {"BFF_WEBHOOK_OUTBOX_MAX": "10"}, "BFF_WEBHOOK_OUTBOX_MAX"),
    (
        "survey url, no secret of its own",
        {"BFF_SURVEY_WEBHOOK_URL": "http://h/", "BFF_OFFLINE_WEBHOOK_SECRET": SURVEY_SECRET},
        "BFF_SURVEY_WEBHOOK_SECRET",
    ),
    (
        "survey secret shares a key",
        {"BFF_SURVEY_WEBHOOK_SECRET": SURVEY_SECRET, "BFF_PUSH_WEBHOOK_SECRET": SURVEY_SECRET},
        "BFF_SURVEY_WEBHOOK_SECRET",
    ),
    ("bad hours zone", {"BFF_BUSINESS_HOURS": "Mars/Base; Mon 09:00-17:00"}, "Mars/Base"),
    ("bad hours range", {"BFF_BUSINESS_HOURS": "UTC; Mon 9-17"}, "BFF_BUSINESS_HOURS"),
    # -- one read budget instead of poll intervals (issue 19)
    (
        "retired poll interval",
        {"BFF_POLL_INTERVAL_S": "5"},
        "BFF_POLL_INTERVAL_S is retired: polls follow one read budget, BFF_POLL_READ_BUDGET",
    ),
    ("retired typing cap", {"BFF_POLL_AGENT_TYPING_MAX_S": "30"}, "BFF_POLL_READ_BUDGET"),
    ("no read budget", {"BFF_POLL_READ_BUDGET": "0"}, "BFF_POLL_READ_BUDGET"),
    ("ceiling beyond keep-alive", {"BFF_POLL_CEILING_S": "20"}, "poll_ceiling_s"),
    ("floor above ceiling", {"BFF_POLL_FLOOR_S": "9"}, "poll_floor_s"),
]


@pytest.mark.parametrize(("change", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_exits_with_a_clear_message(
    change: dict[str, str | None], named: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    env.update(GOOD)
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert CONTACT_CENTER_ID not in result.stderr + result.stdout
    assert "short-secret-value" not in result.stderr + result.stdout
    assert WHSEC[6:] not in result.stderr + result.stdout
