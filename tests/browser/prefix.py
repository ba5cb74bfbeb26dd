"""A reverse proxy that serves a daemon under a path, as a studio's own host does (nginx:
``location /syncd/ { proxy_pass http://127.0.0.1:8765/; }``): HTTP and WebSockets, the path stripped on
the way in. Anything outside that path is the studio's, and here 404."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.browser.conftest import serving

_HOP = frozenset({"host", "connection", "upgrade", "transfer-encoding", "content-length", "keep-alive"})


@asynccontextmanager
async def prefix_proxy(port: int, prefix: str) -> AsyncIterator[str]:
    """Serve the daemon at ``port`` under ``prefix`` on a free port; yields the prefixed address."""
    upstream = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _websocket(request, session, f"ws://127.0.0.1:{port}{path}")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with session.request(
            request.method, upstream + path, params=request.query, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            return web.Response(status=answer.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", prefix + "/{tail:.*}", forward)
    try:
        async with serving(app) as origin:
            yield origin + prefix
    finally:
        await session.close()


async def _websocket(request: web.Request, session: aiohttp.ClientSession, url: str) -> web.WebSocketResponse:
    outside = web.WebSocketResponse()
    await outside.prepare(request)
    async with session.ws_connect(url) as inside:
        Socket = aiohttp.ClientWebSocketResponse | web.WebSocketResponse

        async def pipe(source: Socket, sink: Socket) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
            await sink.close()

        await asyncio.gather(pipe(outside, inside), pipe(inside, outside), return_exceptions=True)
    return outside
