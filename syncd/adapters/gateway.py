"""EditorGateway: the HTTP server of the daemon's port: editors' WebSocket, health, readiness, metrics, API.

aiohttp serves it all on one port: the editor WebSocket at ``/v1/editor``, ``/healthz``, ``/readyz``,
``/metrics``, and whatever routes the daemon adds (the HTTP API of :mod:`syncd.http`). For editors
it translates and makes no decisions about the data: frames are parsed and validated
(:mod:`syncd.inbound`), tokens checked (:mod:`syncd.auth`), and what remains goes to the daemon
through the :class:`EditorHandler` port. What the daemon sends back is bytes, serialized once,
wrapped in one WebSocket frame once, and written to every connection that should get it.

Each connection has its own bounded send queue and one task that writes it out, so a slow editor
only ever delays itself: when its queue passes the bound (frames or bytes), the backlog is dropped
and the daemon queues a ``snapshot`` in its place, built when the writer gets to it. The snapshot
replaces changes, not answers: frames queued with :meth:`EditorConnection.reply` (acks, errors,
pongs, the welcome, presence) stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from syncd import outbound
from syncd.auth import TokenVerifier
from syncd.config import GatewaySettings
from syncd.core.pace import TokenBucket
from syncd.errors import AccessRefused, EditRejected, FrameError
from syncd.inbound import HelloFrame, MutationFrame, PingFrame, parse_frame
from syncd.wire import (
    CLOSE_ABNORMAL,
    CLOSE_FOR_ERROR,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NOT_READING,
    CLOSE_RATE_LIMITED,
    CLOSE_RESTART,
    CLOSE_UNAUTHORIZED,
    EDITOR_PATH,
)

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLOSE_TIMEOUT = 5.0
"""Seconds a closing handshake may take before the socket is dropped."""

PING_INTERVAL = 20.0
"""Seconds of silence after which the gateway pings an editor; one that does not answer within half of
it is dropped, so a connection whose peer vanished does not stay an editor for good."""

Routes = Callable[[web.Application], None]
"""Adds the daemon's own routes (the HTTP API) to the application before it starts."""


class EditorHandler(Protocol):
    """What the gateway needs from the daemon."""

    async def open(self, conn: EditorConnection, hello: HelloFrame, user_id: str | None) -> None:
        """Attach an editor that said hello; raise :class:`AccessRefused` to turn it away."""

    def receive(self, conn: EditorConnection, mutation: MutationFrame) -> None:
        """Take a validated mutation of an attached editor."""

    def closed(self, conn: EditorConnection) -> None:
        """The editor's connection is gone."""

    def overflowed(self, conn: EditorConnection) -> None:
        """The editor's backlog was dropped: queue a fresh snapshot for it."""


class ServiceStatus(Protocol):
    """What the gateway's HTTP endpoints report."""

    def readiness(self) -> tuple[bool, str]:
        """Whether the daemon serves and its backend is connected and subscribed, and why not."""

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition."""


def text_frame(data: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (RFC 6455 §5.2) holding ``data``.

    A server's frames are never masked, so the same bytes can go to every editor: the frame is built
    once per change, however many editors get it.
    """
    size = len(data)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + data
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


class _Reply(bytes):
    """A queued frame that an overflow keeps (see :meth:`EditorConnection.reply`)."""

    __slots__ = ()


_RESEND = _Reply()
"""Where a snapshot queued by :meth:`EditorConnection.resend_later` is built and written."""


@dataclass(eq=False, slots=True)
class EditorConnection:
    """One editor's socket and its send queue.

    Args:
        conn_id: a short id for logs and for the core (``c1``, ``c2``, ...).
        ws: the WebSocket response, once prepared.
        transport: the connection's transport, where ready frames are written directly.
        max_frames: frames the queue may hold before it overflows.
        max_bytes: bytes the queue may hold before it overflows.
    """

    conn_id: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    max_frames: int
    max_bytes: int
    project_id: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    # A list, not a deque: a deque takes 0.75 KB at once, and most editors never queue anything. Taking
    # from the front is a copy of what is behind it, small beside the write each frame costs.
    _queue: list[bytes] = field(default_factory=list)
    _queued_bytes: int = 0
    # The writer is a task started by the first frame queued (most editors read as fast as they are
    # written to, and never need one), woken by a flag and, while it waits, a future. A task from the
    # start and an asyncio.Event (with a deque of its own) cost about 2 KB for each editor.
    _writer: asyncio.Task[None] | None = None
    _woken: bool = False
    _waiter: asyncio.Future[None] | None = None
    _closing: tuple[int, str] | None = None
    _writing: bool = False
    _resend: Callable[[], bytes | None] | None = None
    overflows: int = 0

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The gateway's logger, naming this connection (and its project once known)."""
        if self.project_id is None:
            return logging.LoggerAdapter(log, {"conn": self.conn_id})
        return logging.LoggerAdapter(log, {"conn": self.conn_id, "project": self.project_id})

    def _wake(self) -> None:
        self._woken = True
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"syncd.gateway.write.{self.conn_id}"
            )
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send(self, data: bytes) -> bool:
        """Queue ``data``, a frame that a snapshot replaces (a change, ``saved``, an event).

        Returns:
            False when the queue overflowed: its frames were dropped, except replies, and the caller
            must queue a snapshot (:meth:`resend_later`). True while one is pending: it stands for
            ``data``, which is not queued.
        """
        if self._closing is not None or self._resend is not None:
            return True  # a snapshot still to be built stands for it
        if self._write_at_once(data):
            return True
        self._enqueue(data)
        if len(self._queue) > self.max_frames or self._queued_bytes > self.max_bytes:
            self.overflows += 1
            kept = [frame for frame in self._queue if type(frame) is _Reply]
            self.log.warning(
                "editor is not reading: dropping %d queued frames (%d bytes), a snapshot follows",
                len(self._queue) - len(kept),
                self._queued_bytes - sum(len(frame) for frame in kept),
            )
            self._queue.clear()
            self._queue.extend(kept)
            self._queued_bytes = sum(len(frame) for frame in kept)
            return False
        return True

    def reply(self, data: bytes) -> None:
        """Queue a frame that no snapshot replaces: an ack, an error, a pong, the welcome, presence.

        It does not make the queue overflow, and an overflow keeps it. Only an editor that lets
        twice the bound pile up (it sends, but reads nothing) is cut off.
        """
        if self._closing is not None:
            return
        if self._write_at_once(data):
            return
        self._enqueue(_Reply(data))
        if len(self._queue) > 2 * self.max_frames or self._queued_bytes > 2 * self.max_bytes:
            self.log.warning("editor reads none of its answers: closing the connection")
            self._queue.clear()
            self._queued_bytes = 0
            self._closing = (CLOSE_NOT_READING, "not reading")
            # A close frame would wait behind the unread data; the socket is dropped instead.
            self.transport.abort()

    def writable_now(self) -> bool:
        """Whether a frame may be written at once instead of queued: the fast path of a reading editor.

        Only while nothing waits before it (the queue is empty and the writer idle), the connection
        is open and its transport has nothing buffered, so frames keep their order and a slow editor
        still goes through its bounded queue.
        """
        return (
            not self._queue
            and not self._writing
            and not self.ws.closed
            and not self.transport.is_closing()
            and not self.transport.get_write_buffer_size()
        )

    def _enqueue(self, data: bytes) -> None:
        """Put ``data`` behind what is queued and wake the writer."""
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wake()

    def _write_at_once(self, data: bytes) -> bool:
        """Write ``data`` to the socket now if :meth:`writable_now`; whether it was."""
        if not self.writable_now():
            return False
        self.transport.write(text_frame(data))
        return True

    def send_now(self, data: bytes) -> None:
        """Send ``data``, queued even past the bound: a joining editor's snapshot, or one that replaces
        a dropped backlog."""
        if self._write_at_once(data):
            return
        self._enqueue(data)

    def resend_later(self, build: Callable[[], bytes | None]) -> None:
        """Queue a snapshot that ``build`` makes when the writer gets to it (None: nothing to send).

        Built then, it is current when written. Until then it stands for every frame that a snapshot
        replaces, so those are not queued, and a second call does nothing: an editor that does not
        read costs one pending snapshot, not one per change.
        """
        if self._closing is None and self._resend is None:
            self._resend = build
            self._enqueue(_RESEND)

    def close(self, code: int, reason: str) -> None:
        """Close once what is queued now has been written."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wake()

    @property
    def closing(self) -> tuple[int, str] | None:
        """The code and reason syncd closes (or closed) the connection with; None while it has not."""
        return self._closing

    @property
    def queued(self) -> tuple[int, int]:
        """Frames and bytes waiting to be written."""
        return len(self._queue), self._queued_bytes

    async def finish(self, code: int, reason: str, within: float | None) -> None:
        """Close (:meth:`close`) and wait at most ``within`` seconds (None: as long as it takes) for
        what is queued and the close frame to be written."""
        self.close(code, reason)
        writer = self._writer
        if writer is None or writer.done():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.shield(writer)
        writer.cancel()

    async def _write_loop(self) -> None:
        """Write queued frames until the connection closes."""
        try:
            while True:
                if not self._woken:
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                self._woken = False
                self._writing = True
                while self._queue:
                    data = self._queue.pop(0)
                    self._queued_bytes -= len(data)
                    if data is _RESEND:
                        build, self._resend = self._resend, None
                        built = None if build is None else build()
                        if built is None:
                            continue
                        data = built
                    await self.ws.send_frame(data, WSMsgType.TEXT)
                self._writing = False
                if self._closing is not None:
                    code, reason = self._closing
                    await self.ws.close(code=code, message=reason.encode())
                    return
        except ConnectionError:
            return


class EditorGateway:
    """Serves editors over WebSocket at ``/v1/editor``, and health, readiness, metrics and the API over HTTP.

    Args:
        settings: address, frame and queue limits, rate limit, hello timeout.
        handler: the daemon side (see :class:`EditorHandler`).
        verifier: checks editors' tokens.
        status: what ``/readyz`` and ``/metrics`` report.
        routes: adds the daemon's HTTP API to the application, if any.
        max_body_bytes: the largest HTTP request body (uploads included).
    """

    name = "gateway"

    def __init__(
        self,
        settings: GatewaySettings,
        handler: EditorHandler,
        verifier: TokenVerifier,
        status: ServiceStatus,
        routes: Routes | None = None,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._status = status
        self._routes = routes
        self._max_body = max_body_bytes
        self._draining = False
        self._verifier = verifier
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._closed = asyncio.Event()
        self._conns: dict[str, EditorConnection] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._serving = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._ids = itertools.count(1)
        self.port = settings.port

    async def __aenter__(self) -> EditorGateway:
        s = self._settings
        app = web.Application(middlewares=[_json_errors], client_max_size=self._max_body)
        app.router.add_get(EDITOR_PATH, self._serve)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        if self._routes is not None:
            self._routes(app)
        app.on_response_prepare.append(_server_header)
        _SERVER_LOG.addFilter(_QUIET_BAD_REQUESTS)
        # aiohttp's keep-alive timer also closes a connection that never completes its first request;
        # its default of an hour let such connections (a broken client, a scanner) hold a file that long.
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0, keepalive_timeout=s.idle_timeout
        )
        await runner.setup()
        assert runner.server is not None
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(runner.server, s.host, s.port, reuse_address=True)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = self._server.sockets[0].getsockname()[1]
        where = f"every address, port {self.port}" if s.listens_everywhere else s.dial_url(self.port)
        log.info("listening on %s (editors: ws://…%s)", where, EDITOR_PATH)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def run(self) -> None:
        """Wait until the server is closed (closing happens in ``__aexit__``)."""
        await self._closed.wait()

    def stop_accepting(self) -> None:
        """Refuse new connections and take no more edits; the connected editors stay until :meth:`close`.

        An edit that arrives from now on is neither applied nor acknowledged: the editor resends it to
        the next daemon after reconnecting, as it does with every unacknowledged mutation.
        """
        self._draining = True
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop accepting connections and close every editor with 1012 (daemon restarting)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.close(CLOSE_RESTART, "daemon restarting")
        for ws in list(self._sockets):
            if not any(conn.ws is ws for conn in self._conns.values()):
                with contextlib.suppress(ConnectionError):
                    await ws.close(code=CLOSE_RESTART, message=b"daemon restarting")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._idle.wait()
        await runner.cleanup()
        self._closed.set()

    @property
    def connections(self) -> Iterable[EditorConnection]:
        """The open editor connections."""
        return self._conns.values()

    @property
    def draining(self) -> bool:
        """Whether the gateway stopped taking edits (a shutdown began)."""
        return self._draining

    # -- HTTP -------------------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, why = self._status.readiness()
        return _json(200 if ready else 503, {"ready": ready, "reason": why})

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self._status.metrics_text())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    # -- editors ----------------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        s = self._settings
        # Frames up to max_frame_bytes get an error frame and the connection stays usable; far larger
        # ones would cost memory just to refuse, so aiohttp closes with 1009.
        ws = web.WebSocketResponse(
            max_msg_size=s.max_frame_bytes * 4,
            compress=False,
            timeout=CLOSE_TIMEOUT,
            autoping=True,
            heartbeat=PING_INTERVAL,
        )
        if not ws.can_prepare(request).ok:
            return _json(426, {"error": "bad_request", "message": f"{EDITOR_PATH} takes WebSocket upgrades"})
        if self._draining:
            return _json(503, {"error": "unavailable", "message": "the daemon is stopping"})
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        conn = EditorConnection(f"c{next(self._ids)}", ws, transport, s.send_queue_frames, s.send_queue_bytes)
        self._serving += 1
        self._idle.clear()
        self._sockets.add(ws)
        try:
            await self._serve_editor(conn)
        finally:
            self._sockets.discard(ws)
            self._serving -= 1
            if not self._serving:
                self._idle.set()
        return ws

    async def _serve_editor(self, conn: EditorConnection) -> None:
        hello = await self._hello(conn)
        if hello is None:
            return
        self._conns[conn.conn_id] = conn
        try:
            try:
                await self._handler.open(conn, hello, conn.user_id)
            except AccessRefused as exc:
                conn.log.info("refused: %s", exc.message)
                conn.send_now(outbound.error(exc.code, exc.message))
                await conn.finish(
                    CLOSE_FOR_ERROR.get(exc.code, CLOSE_INTERNAL_ERROR), _close_reason(exc.message), None
                )
                return
            del hello  # else it lives as long as the connection (about 1 KB per editor)
            conn.log.info("editor %s opened project %s", conn.client_id, conn.project_id)
            await self._receive(conn)
        except ConnectionError:
            pass
        finally:
            self._conns.pop(conn.conn_id, None)
            if conn.project_id is not None:
                self._handler.closed(conn)
            ours = conn.closing
            await conn.finish(1000, "", 1.0)
            # aiohttp's close_code is the peer's: after syncd closed, that is the editor's echo of it.
            if ours is None and conn.ws.close_code in (None, CLOSE_ABNORMAL):
                # aiohttp gives 1006 both for a peer gone without a close frame and for its own ping timeout.
                conn.log.info("closed (1006, connection lost: no close frame, or no answer to syncd's ping)")
            elif ours is None:
                conn.log.info("closed (%s, by the editor)", conn.ws.close_code)
            else:
                conn.log.info("closed (%s, by syncd%s)", ours[0], f": {ours[1]}" if ours[1] else "")

    async def _hello(self, conn: EditorConnection) -> HelloFrame | None:
        """Wait for a valid hello with a valid token; close the connection and return None otherwise."""
        s = self._settings
        try:
            message = await conn.ws.receive(timeout=s.hello_timeout)
        except TimeoutError:
            why = f"no hello within {s.hello_timeout:g} s"
            await _refuse(conn.ws, CLOSE_HELLO_TIMEOUT, "unauthorized", why)
            return None
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        try:
            frame = parse_frame(message.data, max_bytes=s.max_frame_bytes, max_depth=s.max_json_depth)
        except FrameError as exc:
            await _refuse(conn.ws, CLOSE_UNAUTHORIZED, exc.code, exc.message)
            return None
        if not isinstance(frame, HelloFrame):
            await _refuse(conn.ws, CLOSE_UNAUTHORIZED, "unauthorized", "the first frame must be hello")
            return None
        if frame.token is not None:
            try:
                conn.user_id = await self._verifier.verify(frame.token)
            except EditRejected as exc:
                # unavailable (the signing keys cannot be fetched) is 1011: retry, not sign in again.
                close = CLOSE_FOR_ERROR.get(exc.code, CLOSE_INTERNAL_ERROR)
                await _refuse(conn.ws, close, exc.code, exc.message)
                return None
        conn.project_id = frame.project_id.lower()
        conn.client_id = frame.client_id.lower()
        return frame

    async def _receive(self, conn: EditorConnection) -> None:
        s = self._settings
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(s.mutation_rate, s.mutation_burst, loop.time())
        while True:
            message = await conn.ws.receive()
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return
            try:
                frame = parse_frame(message.data, max_bytes=s.max_frame_bytes, max_depth=s.max_json_depth)
            except FrameError as exc:
                conn.reply(outbound.error(exc.code, exc.message, exc.mid))
                continue
            match frame:
                case PingFrame():
                    conn.reply(outbound.pong(frame.t))
                case HelloFrame():
                    conn.reply(
                        outbound.error("bad_request", "hello: already said; one project per connection")
                    )
                case _ if self._draining:
                    continue
                case _:
                    if not bucket.take(loop.time()):
                        conn.log.warning("rate limit exceeded; closing")
                        conn.send_now(
                            outbound.error("rate_limited", "too many mutations per second", frame.mid)
                        )
                        conn.close(CLOSE_RATE_LIMITED, "rate limited")
                        # Keep reading (and discarding) until the close completes: a full
                        # incoming buffer would stall the closing handshake.
                        while (await conn.ws.receive()).type in (WSMsgType.TEXT, WSMsgType.BINARY):
                            pass
                        return
                    self._handler.receive(conn, frame)


def fan_out(
    conns: Iterable[EditorConnection], data: bytes, on_overflow: Callable[[EditorConnection], None]
) -> int:
    """Send the same frame to every connection; return how many got it.

    The WebSocket frame is built once and written as it is to every connection that can take it at
    once; the others queue it, and those whose queue overflows are handed to ``on_overflow``.
    """
    sent = 0
    frame: bytes | None = None
    for conn in conns:
        if conn.writable_now():
            if frame is None:
                frame = text_frame(data)
            conn.transport.write(frame)
            sent += 1
        elif conn.send(data):
            sent += 1
        else:
            on_overflow(conn)
    return sent


async def _refuse(ws: web.WebSocketResponse, close_code: int, code: str, message: str) -> None:
    log.info("refused before hello completed: %s (%s, close %d)", message, code, close_code)
    with contextlib.suppress(ConnectionError):
        await ws.send_frame(outbound.error(code, message), WSMsgType.TEXT)
        await ws.close(code=close_code, message=_close_reason(message).encode())


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer aiohttp's own refusals (no such path, wrong method) in JSON, like the API's errors.

    A WebSocket opened on another path than the editors' is refused too: at ``/`` it would get the
    inspector's page, which a WebSocket library reports as nothing more than "HTTP 200".
    """
    if request.path != EDITOR_PATH and request.headers.get("Upgrade", "").lower() == "websocket":
        return _json(404, {"error": "not_found", "message": f"editors open their WebSocket at {EDITOR_PATH}"})
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _json(404, {"error": "not_found", "message": f"no such path: {request.path}"})
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        refusal = _json(
            405,
            {
                "error": "bad_request",
                "message": f"{exc.method} is not allowed on {request.path} (only {allowed})",
            },
        )
        refusal.headers["Allow"] = allowed
        return refusal


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "syncd"


def _close_reason(message: str) -> str:
    """``message`` cut to the 123 bytes of UTF-8 that a close frame holds, on a character boundary."""
    return message.encode(errors="replace")[:123].decode(errors="ignore")


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every request it cannot parse as an ERROR with a traceback; it is the client's
    doing (a 9 KB header line, 200 headers), already answered 400, so it becomes one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "refused a malformed HTTP request: %s", (exc.message,)
            record.exc_info = record.exc_text = None
        return True


_SERVER_LOG = logging.getLogger("aiohttp.server")
_QUIET_BAD_REQUESTS = _QuietBadRequests()
