"""EditorGateway: the WebSocket server that editors connect to, plus /healthz, /readyz and /metrics.

It translates and makes no decisions about the data: frames are parsed and validated
(:mod:`syncd.inbound`), tokens checked (:mod:`syncd.auth`), and what remains goes to the daemon
through the :class:`EditorHandler` port. What the daemon sends back is bytes, serialized once and
queued on every connection that should get them.

Each connection has its own bounded send queue and one task that writes it out, so a slow editor
only ever delays itself: when its queue passes the bound (frames or bytes), the backlog is dropped
and the daemon queues a ``snapshot`` in its place, built when the writer gets to it. The snapshot
replaces changes, not answers: frames queued with :meth:`EditorConnection.reply` (acks, errors,
pongs, the welcome, presence) stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage
from websockets.http11 import Request, Response
from websockets.protocol import State

from syncd import outbound
from syncd.auth import TokenVerifier
from syncd.config import GatewaySettings
from syncd.errors import AccessRefused, EditRejected, FrameError
from syncd.inbound import HelloFrame, MutationFrame, PingFrame, parse_frame
from syncd.wire import (
    CLOSE_FOR_ERROR,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_NOT_READING,
    CLOSE_RATE_LIMITED,
    CLOSE_RESTART,
    CLOSE_UNAUTHORIZED,
    EDITOR_PATH,
)

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


class _Reply(bytes):
    """A queued frame that an overflow keeps (see :meth:`EditorConnection.reply`)."""

    __slots__ = ()


_RESEND = _Reply()
"""Where a snapshot queued by :meth:`EditorConnection.resend_later` is built and written."""


@dataclass(eq=False)
class EditorConnection:
    """One editor's socket and its send queue.

    Args:
        conn_id: a short id for logs and for the core (``c1``, ``c2``, ...).
        ws: the WebSocket connection.
        max_frames: frames the queue may hold before it overflows.
        max_bytes: bytes the queue may hold before it overflows.
    """

    conn_id: str
    ws: ServerConnection
    max_frames: int
    max_bytes: int
    project_id: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    log: logging.LoggerAdapter[logging.Logger] = field(init=False)
    _queue: deque[bytes] = field(default_factory=deque)
    _queued_bytes: int = 0
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: tuple[int, str] | None = None
    _writing: bool = False
    _resend: Callable[[], bytes | None] | None = None
    overflows: int = 0

    def __post_init__(self) -> None:
        self.log = logging.LoggerAdapter(log, {"conn": self.conn_id})

    def send(self, data: bytes) -> bool:
        """Queue ``data``, a frame that a snapshot replaces (a change, ``saved``, an event).

        Returns:
            False when the queue overflowed: its frames were dropped, except replies, and the caller
            must queue a snapshot (:meth:`resend_later`). True while one is pending: it stands for
            ``data``, which is not queued.
        """
        if self._closing is not None or self._resend is not None:
            return True  # a snapshot still to be built stands for it
        if self.writable_now():
            broadcast((self.ws,), data.decode())
            return True
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wakeup.set()
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
        if self.writable_now():
            broadcast((self.ws,), data.decode())
            return
        self._queue.append(_Reply(data))
        self._queued_bytes += len(data)
        self._wakeup.set()
        if len(self._queue) > 2 * self.max_frames or self._queued_bytes > 2 * self.max_bytes:
            self.log.warning("editor reads none of its answers: closing the connection")
            self._queue.clear()
            self._queued_bytes = 0
            self._closing = (CLOSE_NOT_READING, "not reading")
            # A close frame would wait behind the unread data; the socket is dropped instead.
            self.ws.transport.abort()

    def writable_now(self) -> bool:
        """Whether a frame may be written at once instead of queued: the fast path of a reading editor.

        Only while nothing waits before it (the queue is empty and the writer idle), the connection
        is open and its transport has nothing buffered, so frames keep their order and a slow editor
        still goes through its bounded queue. The write itself is websockets' ``broadcast``.
        """
        return (
            not self._queue
            and not self._writing
            and self.ws.state is State.OPEN
            and not self.ws.transport.get_write_buffer_size()
        )

    def send_now(self, data: bytes) -> None:
        """Queue ``data`` even past the bound: a snapshot that replaces a dropped backlog."""
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wakeup.set()

    def resend_later(self, build: Callable[[], bytes | None]) -> None:
        """Queue a snapshot that ``build`` makes when the writer gets to it (None: nothing to send).

        Built then, it is current when written. Until then it stands for every frame that a snapshot
        replaces, so those are not queued, and a second call does nothing: an editor that does not
        read costs one pending snapshot, not one per change.
        """
        if self._closing is None and self._resend is None:
            self._resend = build
            self._queue.append(_RESEND)
            self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        """Close once what is queued now has been written."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    @property
    def queued(self) -> tuple[int, int]:
        """Frames and bytes waiting to be written."""
        return len(self._queue), self._queued_bytes

    async def write_loop(self) -> None:
        """Write queued frames until the connection closes."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                self._writing = True
                while self._queue:
                    data = self._queue.popleft()
                    self._queued_bytes -= len(data)
                    if data is _RESEND:
                        build, self._resend = self._resend, None
                        built = None if build is None else build()
                        if built is None:
                            continue
                        data = built
                    await self.ws.send(data, text=True)
                self._writing = False
                if self._closing is not None:
                    await self.ws.close(*self._closing)
                    return
        except ConnectionClosed:
            return


class _EditorSocket(ServerConnection):
    """A server connection that turns malformed handshakes away with an HTTP status and one log line.

    The library logs every failed opening handshake as an error with a traceback, and answers a
    request it cannot parse (a header line over 8 KiB, more than 128 headers) with no response at
    all. Both are the client's doing: it gets a 400 (or the library's own status) and syncd logs one
    INFO line.
    """

    _answered = False

    def send_data(self) -> None:
        # Runs right after the request failed to parse, before the library's EOF goes out.
        exc = self.protocol.handshake_exc
        if (
            not self._answered
            and self.request is None
            and isinstance(exc, InvalidMessage)
            and not isinstance(exc.__cause__, EOFError)
        ):
            self._answered = True
            bad = self.protocol.reject(http.HTTPStatus.BAD_REQUEST, "Malformed HTTP request.\n")
            self.transport.write(bad.serialize())
        super().send_data()

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        except InvalidHandshake as exc:
            # Returning leaves the connection unopened: the server drops it without a word more.
            why = f"{exc} ({exc.__cause__})" if exc.__cause__ is not None else str(exc)
            if isinstance(exc.__cause__, EOFError):
                log.debug("connection closed before a complete handshake: %s", why)
            else:
                log.info("refused a malformed WebSocket handshake from %s: %s", self.remote_address, why)


class _RateLimit:
    """A token bucket: ``rate`` mutations per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EditorGateway:
    """Serves editors over WebSocket at ``/v1/editor`` and health, readiness and metrics over HTTP.

    Args:
        settings: address, frame and queue limits, rate limit, hello timeout.
        handler: the daemon side (see :class:`EditorHandler`).
        verifier: checks editors' tokens.
        status: what ``/readyz`` and ``/metrics`` report.
    """

    name = "gateway"

    def __init__(
        self,
        settings: GatewaySettings,
        handler: EditorHandler,
        verifier: TokenVerifier,
        status: ServiceStatus,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._status = status
        self._draining = False
        self._verifier = verifier
        self._server: Server | None = None
        self._conns: dict[str, EditorConnection] = {}
        self._ids = itertools.count(1)
        self.port = settings.port

    async def __aenter__(self) -> EditorGateway:
        s = self._settings
        self._server = await serve(
            self._serve,
            s.host,
            s.port,
            process_request=self._http,
            # Frames up to max_frame_bytes get an error frame and the connection stays usable;
            # far larger ones would cost memory just to refuse, so the library closes with 1009.
            max_size=s.max_frame_bytes * 4,
            compression=None,
            server_header=None,
            create_connection=_EditorSocket,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("listening on ws://%s:%d%s", s.host, self.port, EDITOR_PATH)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def run(self) -> None:
        """Wait until the server is closed (closing happens in ``__aexit__``)."""
        assert self._server is not None
        await self._server.wait_closed()

    def stop_accepting(self) -> None:
        """Refuse new editors and take no more edits; the connected editors stay until :meth:`close`.

        An edit that arrives from now on is neither applied nor acknowledged: the editor resends it to
        the next daemon after reconnecting, as it does with every unacknowledged mutation.
        """
        self._draining = True
        if self._server is not None:
            self._server.close(close_connections=False)

    async def close(self) -> None:
        """Stop accepting editors and close every connection with 1012 (daemon restarting)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(close_connections=False)
        for conn in list(self._conns.values()):
            conn.close(CLOSE_RESTART, "daemon restarting")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()

    @property
    def connections(self) -> Iterable[EditorConnection]:
        """The open editor connections."""
        return self._conns.values()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == EDITOR_PATH:
            return None
        if path == "/healthz":
            return _response(http.HTTPStatus.OK, b'{"status":"ok"}', "application/json")
        if path == "/readyz":
            ready, why = self._status.readiness()
            body = json.dumps({"ready": ready, "reason": why}).encode()
            status = http.HTTPStatus.OK if ready else http.HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, body, "application/json")
        if path == "/metrics":
            return _response(http.HTTPStatus.OK, self._status.metrics_text(), METRICS_CONTENT_TYPE)
        return _response(http.HTTPStatus.NOT_FOUND, b'{"error":"not found"}', "application/json")

    async def _serve(self, ws: ServerConnection) -> None:
        s = self._settings
        conn = EditorConnection(f"c{next(self._ids)}", ws, s.send_queue_frames, s.send_queue_bytes)
        hello = await self._hello(conn)
        if hello is None:
            return
        writer = asyncio.create_task(conn.write_loop(), name=f"syncd.gateway.write.{conn.conn_id}")
        self._conns[conn.conn_id] = conn
        try:
            try:
                await self._handler.open(conn, hello, conn.user_id)
            except AccessRefused as exc:
                conn.log.info("refused: %s", exc.message)
                conn.send_now(outbound.error(exc.code, exc.message))
                conn.close(CLOSE_FOR_ERROR.get(exc.code, 1011), _close_reason(exc.message))
                await writer
                return
            conn.log.info("editor %s opened project %s", conn.client_id, conn.project_id)
            await self._receive(conn)
        except ConnectionClosed:
            pass
        finally:
            self._conns.pop(conn.conn_id, None)
            if conn.project_id is not None:
                self._handler.closed(conn)
            if not writer.done():
                conn.close(1000, "")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await asyncio.shield(writer)
                writer.cancel()
            conn.log.info("closed (%s)", ws.close_code)

    async def _hello(self, conn: EditorConnection) -> HelloFrame | None:
        """Wait for a valid hello with a valid token; close the connection and return None otherwise."""
        s = self._settings
        try:
            async with asyncio.timeout(s.hello_timeout):
                data = await conn.ws.recv()
        except TimeoutError:
            why = f"no hello within {s.hello_timeout:g} s"
            await _refuse(conn.ws, CLOSE_HELLO_TIMEOUT, "unauthorized", why)
            return None
        except ConnectionClosed:
            return None
        try:
            frame = parse_frame(data, max_bytes=s.max_frame_bytes, max_depth=s.max_json_depth)
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
                await _refuse(conn.ws, CLOSE_UNAUTHORIZED, exc.code, exc.message)
                return None
        conn.project_id = frame.project_id.lower()
        conn.client_id = frame.client_id.lower()
        conn.log = logging.LoggerAdapter(log, {"conn": conn.conn_id, "project": conn.project_id})
        return frame

    async def _receive(self, conn: EditorConnection) -> None:
        s = self._settings
        loop = asyncio.get_running_loop()
        bucket = _RateLimit(s.mutation_rate, s.mutation_burst, loop.time())
        async for data in conn.ws:
            try:
                frame = parse_frame(data, max_bytes=s.max_frame_bytes, max_depth=s.max_json_depth)
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
                        # incoming buffer would stall the closing handshake for close_timeout.
                        async for _ in conn.ws:
                            pass
                        return
                    self._handler.receive(conn, frame)


def fan_out(
    conns: Iterable[EditorConnection], data: bytes, on_overflow: Callable[[EditorConnection], None]
) -> int:
    """Send the same frame to every connection; return how many got it.

    The connections that can take it at once get it in one ``broadcast`` call (the frame encoded once);
    the others queue it, and those whose queue overflows are handed to ``on_overflow``.
    """
    sent = 0
    direct: list[ServerConnection] = []
    for conn in conns:
        if conn.writable_now():
            direct.append(conn.ws)
            sent += 1
        elif conn.send(data):
            sent += 1
        else:
            on_overflow(conn)
    if direct:
        broadcast(direct, data.decode())
    return sent


async def _refuse(ws: ServerConnection, close_code: int, code: str, message: str) -> None:
    log.info("refused before hello completed: %s (%s, close %d)", message, code, close_code)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(outbound.error(code, message), text=True)
        await ws.close(close_code, _close_reason(message))


def _close_reason(message: str) -> str:
    """``message`` cut to the 123 bytes of UTF-8 that a close frame holds, on a character boundary."""
    return message.encode(errors="replace")[:123].decode(errors="ignore")


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)
