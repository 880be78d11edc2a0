"""The emulator's ASGI application: the simulated upstream under /api/v2 and the control API
under /_emulator, around one `Emulator`.

Owns only wiring and the app lifespan (which closes the emulator's tasks on shutdown). It
must not start a server; callers run the returned app (uvicorn, httpx.ASGITransport, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.docs import install_docs
from app.emulator.control import CONTROL_PREFIX, control_router
from app.emulator.core import Emulator
from app.emulator.gate import UpstreamGate
from app.emulator.routes import upstream_router


def create_emulator_app(emulator: Emulator | None = None) -> FastAPI:
    """An app serving the upstream API (/api/v2) and the control API (/_emulator).

    `app.state.emulator` is the Emulator. The app's lifespan cancels the emulator's tasks
    on shutdown; without a lifespan (e.g. httpx.ASGITransport) call `emulator.aclose()`.
    """
    owned = emulator if emulator is not None else Emulator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await owned.aclose()

    app = FastAPI(
        title="Customer Chat API v2 emulator",
        lifespan=lifespan,
        # Served by install_docs, from this server: no CDN (the emulator runs offline too).
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
    )
    app.state.emulator = owned
    app.add_middleware(UpstreamGate, emulator=owned)
    app.include_router(upstream_router(owned), include_in_schema=False)
    app.include_router(control_router(owned))
    install_docs(
        app,
        docs_url=f"{CONTROL_PREFIX}/docs",
        redoc_url=None,
        assets_url=f"{CONTROL_PREFIX}/docs-assets",
    )
    return app
