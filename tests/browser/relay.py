"""A TCP relay between a page and the daemon that holds every chunk a while each way, as a daemon in
another region would; it can drop its links, or silence them."""

from __future__ import annotations

import asyncio

DELAY = 0.1
"""Seconds the relay holds each chunk, each way."""


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, silenced: asyncio.Event
) -> None:
    """Copy one direction, each chunk ``delay`` seconds after it came, in order; once ``silenced``
    is set, chunks vanish and the connection stays up, as on a network path that died without a word."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await chunks.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not silenced.is_set():
                writer.write(chunk)
                await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, chunk))
        chunks.put_nowait((loop.time(), b""))
        await delivering
    finally:
        delivering.cancel()
        writer.close()


class Relay:
    """A TCP relay to the daemon that delays every chunk by DELAY each way; it can drop its links, or
    silence them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.links: list[tuple[asyncio.StreamWriter, asyncio.Event]] = []
        self.address = ""

    async def connect(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        silenced = asyncio.Event()
        self.links += [(client_w, silenced), (server_w, silenced)]
        await asyncio.gather(
            _relay(client_r, server_w, DELAY, silenced),
            _relay(server_r, client_w, DELAY, silenced),
            return_exceptions=True,
        )

    def drop(self) -> None:
        """Cut every link without a close frame, as a lost network does."""
        for writer, _ in self.links:
            writer.transport.abort()
        self.links.clear()

    def silence(self) -> None:
        """Let nothing more through the links open now; new ones work."""
        for _, silenced in self.links:
            silenced.set()
        self.links.clear()
