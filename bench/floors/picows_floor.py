"""The same fan-out floor on picows (a WebSocket layer written in Cython) on uvloop.

Frames arrive in a callback instead of a task woken per frame; each text frame is written to the
room's other clients as in ``aiohttp_floor.py``. Usage: picows_floor.py PORT
"""

import asyncio
import sys

import uvloop
from common import text_frame, until_stopped
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

rooms: dict[str, set[asyncio.Transport]] = {}


class Member(WSListener):
    def __init__(self, path: str) -> None:
        self.room = rooms.setdefault(path, set())

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.me = transport.underlying_transport
        self.room.add(self.me)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            data = text_frame(frame.get_payload_as_bytes())
            for other in self.room:
                if other is not self.me:
                    other.write(data)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.room.discard(self.me)


def member(request: WSUpgradeRequest) -> Member:
    path = request.path
    return Member(path.decode() if isinstance(path, bytes) else path)


async def main(port: int) -> None:
    server = await ws_create_server(member, "127.0.0.1", port)
    await until_stopped()
    server.close()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
