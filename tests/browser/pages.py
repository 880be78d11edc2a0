"""An embedder's site on a loopback port of its own: every path is a small shop page with the
widget's one tag, its `data-*` attributes taken from the query string
(`/help?server=http://127.0.0.1:8001&survey=&restore-minutes=0.2` gives
`data-server="..." data-survey="" data-restore-minutes="0.2"`). The script comes from
`data-server` (or from `script=`, a chat-bff URL, when the page names no server).

With Chromium's host resolver rules (`--host-resolver-rules=MAP *.shop.test 127.0.0.1`) the same
server answers as `www.shop.test`, `help.shop.test`, ...: subdomains of one site.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from harness.servers import free_port

PAGE = """<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,"></head>
<body>
<main><h1>{title}</h1><p>A page of the shop: {path}</p>
<p><a href="/other">Another page</a></p></main>
<script src="{script}/static/widget.js" defer{attrs}></script>
</body>
</html>
"""


class Pages:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                script = query.pop("script", "") or query.get("server", "")
                lang = query.pop("page-lang", "en")
                attrs = "".join(
                    f' data-{html.escape(k)}="{html.escape(v)}"' for k, v in query.items()
                )
                body = PAGE.format(
                    lang=html.escape(lang),
                    title="Shop page " + html.escape(parts.path),
                    path=html.escape(parts.path),
                    script=html.escape(script),
                    attrs=attrs,
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def at(self, host: str = "127.0.0.1") -> str:
        """The site's base URL under another host name (resolved to loopback by Chromium)."""
        return f"http://{host}:{self.port}"

    def __enter__(self) -> Pages:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
