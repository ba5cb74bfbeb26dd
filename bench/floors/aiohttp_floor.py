"""A fan-out floor on syncd's own WebSocket layer: aiohttp on uvloop, nothing else.

A client joins the room named by its URL path; each text frame it sends goes to the room's other
clients. It reads the way syncd's gateway reads (``await ws.receive()`` in a task per connection) and
writes the way it writes (the frame built once, ``transport.write`` to each), so the gap between its
CPU and syncd's under the same load is what syncd does beyond moving frames. Usage: aiohttp_floor.py PORT
"""

import asyncio
import sys

import uvloop
from aiohttp import WSMsgType, web
from common import text_frame, until_stopped

rooms: dict[str, set[asyncio.BaseTransport]] = {}


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    me = request.transport
    assert me is not None
    room = rooms.setdefault(request.path, set())
    room.add(me)
    try:
        while (message := await ws.receive()).type is WSMsgType.TEXT:
            frame = text_frame(message.data.encode())
            for other in room:
                if other is not me:
                    other.write(frame)
    finally:
        room.discard(me)
    return ws


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/{room:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await until_stopped()
    await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
