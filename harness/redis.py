"""Redis on loopback for tests and the bench: the shared server the suites use (`REDIS_URL`), a
private `redis-server` to restart and flush (`RedisServer`), and the parts the topologies are
made of (`RedisProcess`, TLS files signed by a throwaway CA).

Every process listens on 127.0.0.1 on a free port. It must not know pytest: a missing
`redis-server` raises FileNotFoundError, and the caller decides whether that skips or fails.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from harness.servers import free_port

# The Redis every suite may use as it is (each with its own key prefix); scripts/setup-deps
# starts one when none answers.
REDIS_URL = os.environ.get("BFF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATA_PASSWORD = "topology-data-secret"
SENTINEL_PASSWORD = "topology-sentinel-secret"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed")
    return path


@dataclass(frozen=True)
class TlsFiles:
    """A CA and one certificate signed by it (server and client use), for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self) -> list[str]:
        return [
            "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "yes",
            "--tls-replication", "yes",
        ]  # fmt: skip

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
        }

    def url_options(self) -> str:
        return f"ssl_ca_certs={self.ca}&ssl_certfile={self.cert}&ssl_keyfile={self.key}"

    def cli_args(self) -> list[str]:
        return ["--tls", "--cacert", str(self.ca), "--cert", str(self.cert), "--key", str(self.key)]


def make_tls_files(directory: Path) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("chat-bff test CA"))
        .issuer_name(name("chat-bff test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class RedisProcess:
    """One `redis-server` (or sentinel) process on a free loopback port (TLS only, when
    `tls` is given)."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        sentinel_conf: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.args = list(args)
        self.sentinel_conf = sentinel_conf
        self.tls = tls
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        if self.tls is None:
            common = ["--port", str(self.port)]
        else:
            common = ["--port", "0", "--tls-port", str(self.port), *self.tls.server_args()]
        common += ["--bind", "127.0.0.1", "--dir", str(self.workdir)]
        common += ["--logfile", str(self.log), "--loglevel", "notice"]
        if self.sentinel_conf is not None:
            conf = self.workdir / f"sentinel-{self.port}.conf"
            conf.write_text(self.sentinel_conf)
            argv = [binary("redis-server"), str(conf), "--sentinel", *common]
        else:
            argv = [binary("redis-server"), *common, "--save", "", "--appendonly", "no"]
            argv += self.args
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, password: str | None = DATA_PASSWORD, **kwargs: Any) -> redis.Redis:
        tls = self.tls.client_kwargs() if self.tls is not None else {}
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=password,
            socket_timeout=2,
            socket_connect_timeout=2,
            decode_responses=True,
            **tls,
            **kwargs,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_until(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    """Until `predicate()` is true, asked every 0.1 s (a Redis error counts as not yet);
    RuntimeError naming `what` and the last error after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last!r})")


class RedisServer:
    """A private `redis-server` on a loopback port, so tests may restart and flush it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        parts = [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(f"*{len(args)}\r\n{''.join(parts)}".encode())
            return sock.recv(65536)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
