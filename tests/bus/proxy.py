"""A TCP proxy on loopback in front of a Redis, for the bus tests that cut or silence its
connections, or make it distant."""

from __future__ import annotations

import asyncio


class Proxy:
    """A TCP proxy in front of the test Redis, to cut or silence connections at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.delay_s = 0.0  # added to every chunk forwarded, each way: a distant Redis
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[bool]]] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        alive = [True]
        self.links.append((writer, up_writer, alive))
        await asyncio.gather(
            self._pipe(reader, up_writer, alive),
            self._pipe(up_reader, writer, alive),
            return_exceptions=True,
        )

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, alive: list[bool]
    ) -> None:
        try:
            while data := await src.read(65536):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if alive[0]:  # a silenced link swallows everything, like a dead peer
                    dst.write(data)
                    await dst.drain()
        finally:
            dst.close()

    def silence_all(self) -> None:
        for _, _, alive in self.links:
            alive[0] = False

    def cut_all(self) -> None:
        for down, up, _ in self.links:
            down.close()
            up.close()
        self.links.clear()

    async def stop(self) -> None:
        self.cut_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
