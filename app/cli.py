"""The `chat-bff` command: `serve`, `demo` and `emulator`.

Owns turning command lines into running servers and their help; configuration errors become a
clear message and exit status 2, never a traceback. `serve` and `demo` read the same `BFF_*`
settings the same way (unknown names refused); the demo fixes the few that point at its
built-in emulator.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import socket
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

import httpx
import uvicorn
from pydantic import SecretStr, ValidationError

from app import logs
from app.config.settings import Settings, UnknownSettingError, describe_problem, load_settings
from app.edge.serving import ConnectionLimits, GuardedHttpToolsProtocol
from app.emulator import Emulator, EmulatorConfig, create_emulator_app
from app.emulator.pacing import DEMO, PACES, Pace, describe
from app.main import create_app
from app.runtime import Runtime
from app.version import VERSION

DEMO_CONTACT_CENTER_ID = "demo-contact-center"


class _Server(uvicorn.Server):
    """uvicorn, plus an early drain on SIGTERM/SIGINT: pollers are handed over and streams
    told to reconnect while uvicorn waits for connections to close, not after."""

    def __init__(self, config: uvicorn.Config, app: object) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime = getattr(getattr(self._app, "state", None), "runtime", None)
        if isinstance(runtime, Runtime):
            runtime.request_drain()
        super().handle_exit(sig, frame)


# Young-generation threshold of the cyclic garbage collector. Python's default (700) collects
# every few hundred allocations, so the objects of thousands of upstream calls in flight
# survive two collections and land in the oldest generation; that makes full collections
# frequent, and with a few thousand chats and streams one takes most of a second, during which
# no poll, stream or request moves. Almost everything here is freed by reference counting
# anyway (the collector finds ~nothing), so it can run far less often.
GC_YOUNG_THRESHOLD = 50_000


def _tune_gc() -> None:
    """Called once the app is built: what exists now lives as long as the process, so it is
    frozen out of every future collection; then the collector runs rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


def _server(
    app: object,
    host: str,
    port: int,
    shutdown_s: float,
    trusted_proxies: Sequence[str] = (),
    limits: ConnectionLimits | None = None,
) -> uvicorn.Server:
    """`trusted_proxies` (BFF_TRUSTED_PROXIES): only from these peers does uvicorn believe
    X-Forwarded-Proto and X-Forwarded-For, so the scheme of any URL built from a request (and
    the client address) is the one the proxy saw; from anyone else they are ignored.
    `limits`: the connection guards of app/edge/serving.py."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        # Request deadlines, header limits and closes that cannot linger (app/edge/serving.py).
        http=GuardedHttpToolsProtocol.with_limits(limits or ConnectionLimits()),
        log_level="info",
        # Our handler (app/logs.py) formats uvicorn's lines too; its own access log is off
        # because it writes raw paths, and a path can carry a chat handle.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(shutdown_s) + 5,
        timeout_keep_alive=75,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        server_header=False,
    )
    return _Server(config, app)


def serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except (ValidationError, UnknownSettingError) as error:
        print(describe_problem(error), file=sys.stderr)
        return 2
    if settings.internal_port == args.port:
        message = "invalid configuration:\n  BFF_INTERNAL_PORT: must differ from --port"
        print(message, file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    _tune_gc()
    server = _server(
        app,
        args.host,
        args.port,
        settings.shutdown_grace_s,
        settings.trusted_proxies,
        _limits(settings),
    )
    if settings.internal_port is None:
        server.run()
        return 0
    # Both ports on one server, one app: app/edge/ports.py tells them apart by the socket.
    try:
        sockets = [_bind(args.host, args.port), _bind(args.host, settings.internal_port)]
    except OSError as error:
        logging.getLogger("chat_bff").error("cannot listen: %s", error)
        return 1
    logging.getLogger("chat_bff").info(
        "listening on %s:%d, and on port %d for /healthz, /readyz and /metrics only",
        args.host,
        args.port,
        settings.internal_port,
    )
    server.run(sockets=sockets)
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket as uvicorn binds its own (it listens on it when it starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        # A peer that has not read what we wrote within a stream's write deadline is gone.
        close_grace_s=settings.sse_send_timeout_s,
    )


def demo(args: argparse.Namespace) -> int:
    """One process: chat-bff on embedded defaults with the emulator reached in-process."""
    emulator = Emulator(EmulatorConfig(contact_center_id=DEMO_CONTACT_CENTER_ID, pace=DEMO))
    try:
        settings = load_settings(**_demo_settings())
    except (ValidationError, UnknownSettingError) as error:
        print(describe_problem(error), file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    transport = httpx.ASGITransport(app=create_emulator_app(emulator))
    app = create_app(settings, upstream_transport=transport)
    _tune_gc()
    print(f"chat-bff demo: open http://{args.host}:{args.port}/ (API docs at /docs)")
    _server(app, args.host, args.port, settings.shutdown_grace_s, limits=_limits(settings)).run()
    return 0


def _demo_settings() -> dict[str, object]:
    """What the demo fixes, whatever the environment says (DEMO_HELP names them): its upstream
    is the emulator in this process, so the contact-center id and sealing key are its own, and
    it is one process."""
    fixed: dict[str, object] = {
        "upstream_url": "http://emulator.local",
        "contact_center_id": SecretStr(DEMO_CONTACT_CENTER_ID),
        "secret_key": SecretStr(secrets.token_urlsafe(32)),
        "redis_url": None,
        "demo_page": True,
    }
    # People run the demo at a terminal: text lines unless they asked for JSON.
    if "BFF_LOG_FORMAT" not in os.environ:
        fixed["log_format"] = "text"
    return fixed


def emulator(args: argparse.Namespace) -> int:
    _terminal_logs()
    config = EmulatorConfig(
        contact_center_id=args.contact_center_id or None,
        idle_disconnect_s=args.idle_disconnect,
        pace=_pace(args),
    )
    app = create_emulator_app(Emulator(config))
    _server(app, args.host, args.port, 1).run()
    return 0


def _pace(args: argparse.Namespace) -> Pace:
    """The named pace, with the delays given on the command line fixed in it."""
    pace = PACES[args.pace]
    if args.agent_join_delay is not None:
        pace = replace(pace, join_s=(args.agent_join_delay, args.agent_join_delay))
    if args.agent_reply_delay is not None:
        pace = replace(pace, think_s=(args.agent_reply_delay, args.agent_reply_delay))
    return pace


def _terminal_logs() -> None:
    """The emulator is run by people at a terminal and takes no BFF_* setting but this one."""
    fmt = os.environ.get("BFF_LOG_FORMAT", "text").strip().lower()
    logs.configure("json" if fmt == "json" else "text", "INFO")


DESCRIPTION = """\
chat-bff: a backend-for-frontend for a contact center's customer chat. Website widgets and
mobile apps talk to it; it talks to the contact center's Customer Chat API, polling each chat
once for the whole fleet and pushing updates over Server-Sent Events."""

SERVE_HELP = """\
Run the service. Configured by BFF_* environment variables (unknown names are refused);
three are required:
  BFF_UPSTREAM_URL        the contact center's base URL, without /api/v2
  BFF_CONTACT_CENTER_ID   sent upstream as ContactCenterId, never to clients
  BFF_SECRET_KEY          seals chat handles (32+ random bytes; same on every instance)
Often set too: BFF_REDIS_URL (a fleet of instances; unset: one process, in-memory bus),
BFF_ALLOWED_ORIGINS (the sites that embed the widget). Every setting: docs/configuration.md."""

DEMO_HELP = """\
Run the service with a built-in upstream emulator whose agents join, type and reply at a human
pace (the emulator's `--pace demo`: a bot line first, typing notices seconds before replies,
some canned answers), and the demo shop page with the widget at /. Needs no setting. BFF_*
settings are read as by serve (unknown names refused), but for those pointing at the emulator,
which the demo fixes: BFF_UPSTREAM_URL, BFF_CONTACT_CENTER_ID, BFF_SECRET_KEY and BFF_REDIS_URL
(one process)."""

EMULATOR_HELP = """\
Run the upstream emulator alone: a stand-in for the contact center's Customer Chat API
(/api/v2) with a control API (/_emulator, docs at /_emulator/docs) to drive its agents and
inject faults. Point a `chat-bff serve` at it with BFF_UPSTREAM_URL.
Paces of its scripted agents (--pace; `chat-bff demo` runs `demo`):
{paces}"""


def _paces() -> str:
    return "\n".join(
        textwrap.fill(
            describe(pace),
            92,
            initial_indent=f"  {name:8}",
            subsequent_indent=" " * 10,
            break_on_hyphens=False,
        )
        for name, pace in PACES.items()
    )


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="chat-bff",
        description=DESCRIPTION,
        formatter_class=formatter,
        epilog="Run `chat-bff <command> --help` for a command's options and settings.",
    )
    parser.add_argument("--version", action="version", version=f"chat-bff {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, summary, helptext, port in (
        ("serve", "run the service (BFF_* settings)", SERVE_HELP, 8000),
        ("demo", "run the service with a built-in upstream emulator", DEMO_HELP, 8000),
        ("emulator", "run the upstream emulator alone", EMULATOR_HELP.format(paces=_paces()), 8080),
    ):
        cmd = sub.add_parser(name, help=summary, description=helptext, formatter_class=formatter)
        cmd.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
        )
        cmd.add_argument(
            "--port", type=int, default=port, help="port to listen on (default: %(default)s)"
        )
    emu = sub.choices["emulator"]
    emu.add_argument(
        "--contact-center-id",
        default=DEMO_CONTACT_CENTER_ID,
        help="the ContactCenterId it requires (default: %(default)s)",
    )
    emu.add_argument(
        "--pace",
        choices=sorted(PACES),
        default="fixed",
        help="how fast the scripted agents act, see above (default: %(default)s)",
    )
    emu.add_argument(
        "--agent-join-delay",
        type=float,
        help="seconds before the scripted agent joins a chat (default: the pace's)",
    )
    emu.add_argument(
        "--agent-reply-delay",
        type=float,
        help="seconds before the scripted agent starts typing a reply (default: the pace's)",
    )
    emu.add_argument(
        "--idle-disconnect",
        type=float,
        default=45.0,
        help="seconds without a request before a customer is dropped (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Until `serve` has read BFF_LOG_FORMAT: nothing but startup problems is logged here.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = _parser().parse_args(argv)
    handler = {"serve": serve, "demo": demo, "emulator": emulator}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
