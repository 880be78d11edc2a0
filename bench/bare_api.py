"""The limit for cached reads: a bare FastAPI app whose routes answer JSON from a dict, served
by uvicorn as chat-bff is. It holds exactly the answers chat-bff gave for the same paths
(`PUT /_seed`), so both serve the same bytes; what chat-bff spends beyond it is its own.

Run: `python -m bench.bare_api --port N`
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse


def create_bare_app() -> FastAPI:
    app = FastAPI()
    answers: dict[str, dict[str, Any]] = {}

    @app.put("/_seed")
    async def seed(paths: dict[str, dict[str, Any]] = Body(...)) -> dict[str, int]:  # noqa: B008
        answers.update(paths)
        return {"paths": len(answers)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def answer(path: str) -> JSONResponse:
        found = answers.get(path)
        if found is None:
            raise HTTPException(404)
        return JSONResponse(found, headers={"Cache-Control": "no-store"})

    @app.get("/api/v2/chats/{handle}")
    async def get_chat(handle: str) -> JSONResponse:
        return answer(f"/api/v2/chats/{handle}")

    @app.get("/api/v2/chats/{handle}/messages")
    async def get_messages(handle: str, index: str | None = None) -> JSONResponse:
        return answer(f"/api/v2/chats/{handle}/messages?index={index}")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bare_api")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # chat-bff's own server settings (app/cli.py), so only the application differs.
    uvicorn.run(
        create_bare_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        server_header=False,
    )


if __name__ == "__main__":
    main()
