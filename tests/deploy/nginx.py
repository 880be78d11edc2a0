"""The shipped nginx config (deploy/nginx/), run by Debian's nginx on loopback for tests.

Only what must differ on a test machine is changed: the replicas' addresses, the listening
port and the file paths. Each change must match exactly once, so an edit to the shipped files
that these tests no longer cover fails here instead of passing unnoticed.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.components import missing_component

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
SBIN = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in SBIN if Path(p).exists()), None)
    if found is None:
        missing_component("nginx is not installed (Debian package nginx-light)")
    return found


def _once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in the shipped nginx config"
    return text.replace(old, new)


def render(folder: Path, replicas: list[str], port: int) -> Path:
    """The shipped config with loopback replicas, a loopback port and paths under `folder`."""
    main = (DEPLOY / "nginx.conf").read_text()
    main = _once(main, "pid /run/nginx.pid;", f"pid {folder}/nginx.pid;")
    main = _once(main, "/var/log/nginx/error.log", f"{folder}/error.log")
    main = _once(main, "include /etc/nginx/conf.d/chat-bff.conf;", f"include {folder}/site.conf;")
    site = (DEPLOY / "chat-bff.conf").read_text()
    servers = "".join(f"    server {r};\n" for r in replicas)
    site, count = re.subn(r"(?:    server bff\d:8000;\n)+", servers, site)
    assert count == 1, "expected one block of replica servers in chat-bff.conf"
    site = _once(site, "listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    site = _once(site, "/var/log/nginx/chat-bff.access.log", f"{folder}/access.log")
    # Temporary files of buffered bodies: a folder of the test's, not Debian's /var/lib/nginx.
    temp = "".join(
        f"{kind}_temp_path {folder}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi")
    ) + "".join(f"{kind}_temp_path {folder}/{kind};\n" for kind in ("uwsgi", "scgi"))
    main = _once(main, "server_tokens off;", "server_tokens off;\n" + temp)
    (folder / "site.conf").write_text(site)
    conf = folder / "nginx.conf"
    conf.write_text(main)
    return conf


def check(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-e", str(conf.parent / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Nginx:
    def __init__(self, folder: Path, replicas: list[str], port: int) -> None:
        self.folder = folder
        self.conf = render(folder, replicas, port)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        result = check(self.conf)
        assert result.returncode == 0, result.stderr
        self.proc = subprocess.Popen(
            [
                nginx_binary(),
                "-c",
                str(self.conf),
                "-e",
                str(self.folder / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=0.5)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start:\n" + self.error_log())

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text() if path.exists() else ""

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
