"""The API docs pages, `/docs` (Swagger UI) and `/redoc`, served with no request leaving the
server: the assets come from the `fastapi-offline` package (kept up to date with Swagger UI
and ReDoc releases), ReDoc's one built-in address on the internet (its footer's logo) is
replaced by an image inside the bundle, and a Content-Security-Policy keeps anything else the
pages might try (Swagger UI's validator badge) from calling out from a viewer's browser.

Owns the docs pages and their assets, for chat-bff and for the emulator's control API. It must
not change the OpenAPI document (`app/api/openapi.py` does).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
REDOC_JS = "redoc.standalone.js"
# ReDoc's footer shows Redocly's logo from their CDN: blocked by the policy below, it cost a
# console error and a broken image on every visit. The same place now holds an empty image.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"

# Inline script and styles: FastAPI's page templates start the UIs inline, and ReDoc styles
# itself at run time. Workers from blob: ReDoc's search index.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


def offline_redoc_bundle() -> bytes:
    """ReDoc's bundle with its one address on the internet replaced (read once per app)."""
    return (ASSETS_DIR / REDOC_JS).read_bytes().replace(REDOC_CDN_LOGO, EMPTY_IMAGE)


def install_docs(
    app: FastAPI,
    *,
    docs_url: str = "/docs",
    redoc_url: str | None = "/redoc",
    assets_url: str = ASSETS_URL,
) -> None:
    """Serve the pages and their assets; `app` must be built with docs_url/redoc_url None."""
    if redoc_url is not None:
        bundle = offline_redoc_bundle()

        # Before the mount, which would serve the file as shipped.
        @app.get(f"{assets_url}/{REDOC_JS}", include_in_schema=False)
        async def redoc_bundle() -> Response:
            return Response(bundle, media_type="text/javascript")

    app.mount(assets_url, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def secured(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return secured(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{assets_url}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{assets_url}/swagger-ui.css",
                swagger_favicon_url=f"{root}{assets_url}/favicon.png",
                # The validator badge is an image from the validator's public server.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    if redoc_url is None:
        return

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return secured(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{assets_url}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{assets_url}/favicon.png",
                with_google_fonts=False,
            )
        )
