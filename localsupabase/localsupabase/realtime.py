"""The Realtime part of the stand-in: Phoenix channels over aiohttp websockets, fed by the wal2json poller.

It serves ``/realtime/v1/websocket`` and ``/socket/websocket`` and behaves as Supabase Realtime does for
``postgres_changes`` (see ``supabase-realtime.md``): the handshake checks ``vsn`` and the API key; a join
echoes its bindings with ids at once and subscribes afterwards, ending with the ``system`` push
"Subscribed to PostgreSQL" or a ``system`` error; leaves, duplicate joins and ``access_token`` follow
Phoenix and Realtime, stale ``phx_close`` included. Fault hooks make it misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web

from localsupabase.auth import AuthError, verify
from localsupabase.faults import Faults
from localsupabase.filters import Binding, BindingError, binding_id, parse_binding
from localsupabase.payloads import ChangeRouter
from localsupabase.phoenix import PHOENIX_TOPIC, Frame, FrameError, Serializer, negotiate
from localsupabase.poller import PollerConfig, SlotPoller
from localsupabase.subscriptions import SubscribeError, Subscription, subscribe

logger = logging.getLogger(__name__)

PATHS = ("/realtime/v1/websocket", "/socket/websocket")
"""Where the socket is served: Realtime's own path, and the path hosted Supabase routes to it."""

TOPIC_PREFIX = "realtime:"
MAX_FRAME_SIZE = 5_000_000

_REFUSALS = {
    401: "Unauthorized",
    403: "Realtime disabled for this tenant",
    404: "Tenant not found",
    429: "Too many connected users",
    500: "Error connecting to Realtime",
}


@dataclass
class RealtimeConfig:
    """Timing of the Realtime server; tests may change it while the server runs.

    Attributes:
        idle_timeout: Seconds without any data from a client after which its socket is closed.
        subscribe_retry_delay: Range of seconds before retrying a subscription that failed for a
            reason other than bad parameters (for example the ``subscribed_error`` fault).
        resubscribe_delay: Range of seconds before re-subscribing with the claims of a new access token.
        poller: Timing and limits of the slot poller.
    """

    idle_timeout: float = 60.0
    subscribe_retry_delay: tuple[float, float] = (5.0, 10.0)
    resubscribe_delay: tuple[float, float] = (1.0, 3.0)
    poller: PollerConfig = field(default_factory=PollerConfig)


class _Socket:
    """One client websocket: its serializer, its key and its channels, with an ordered outbox."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        serializer: Serializer,
        apikey: str,
    ) -> None:
        self.request = request
        self.ws = ws
        self.serializer = serializer
        self.apikey = apikey
        self.channels: dict[str, _Channel] = {}
        self._outbox: asyncio.Queue[Frame | None] = asyncio.Queue()

    def send(self, frame: Frame) -> None:
        """Queue ``frame``; frames leave in the order they were queued."""
        self._outbox.put_nowait(frame)

    def finish(self) -> None:
        """Let the writer end after the frames already queued."""
        self._outbox.put_nowait(None)

    async def write_loop(self) -> None:
        """Send queued frames until :meth:`finish` or a broken connection."""
        while (frame := await self._outbox.get()) is not None:
            try:
                await self.ws.send_str(self.serializer.encode(frame))
            except (ConnectionError, RuntimeError):
                return


class _Channel:
    """A joined topic on one socket."""

    def __init__(
        self,
        socket: _Socket,
        topic: str,
        join_ref: str | None,
        raw_bindings: list[dict[str, Any]],
        access_token: str,
        claims: dict[str, Any],
    ) -> None:
        self.socket = socket
        self.topic = topic
        self.join_ref = join_ref
        self.raw_bindings = raw_bindings
        self.access_token = access_token
        self.claims = claims
        self.bindings: list[Binding] = []
        self.subscriptions: list[Subscription] = []
        self.open = True
        self.task: asyncio.Task[None] | None = None
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        """The topic without its ``realtime:`` prefix, as ``system`` pushes name the channel."""
        return self.topic.removeprefix(TOPIC_PREFIX)

    def push(self, event: str, payload: dict[str, Any]) -> None:
        """Queue a push of this channel (``ref`` null, ``join_ref`` the channel's)."""
        self.socket.send(Frame(self.topic, event, payload, ref=None, join_ref=self.join_ref))

    def push_system(self, extension: str, status: str, message: str) -> None:
        """Queue a ``system`` push."""
        self.push(
            "system", {"channel": self.name, "extension": extension, "message": message, "status": status}
        )


class RealtimeServer:
    """Supabase Realtime's ``postgres_changes`` over a real PostgreSQL, for the tests.

    Args:
        pool_or_dsn: An asyncpg pool to share (one of its connections is held for the replication slot
            while the server runs) or a DSN, from which the server makes its own pool and connection.
        jwt_secret: The secret that signs API keys and access tokens.
        faults: The switches tests flip to make the server misbehave.
        config: Timing; defaults to Realtime's own values.
    """

    def __init__(
        self,
        pool_or_dsn: asyncpg.Pool | str,
        *,
        jwt_secret: str,
        faults: Faults,
        config: RealtimeConfig | None = None,
    ) -> None:
        self.config = config or RealtimeConfig()
        self.faults = faults
        self._pool_or_dsn = pool_or_dsn
        self._jwt_secret = jwt_secret
        self._pool: asyncpg.Pool | None = None
        self._owns_pool = False
        self._poll_conn: asyncpg.Connection | None = None
        self._poller: SlotPoller | None = None
        self._router = ChangeRouter(max_record_bytes=self.config.poller.max_record_bytes)
        self._sockets: set[_Socket] = set()
        self._accepting = False

    # Lifecycle -----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve the websocket on both of Realtime's paths."""
        for path in PATHS:
            app.router.add_get(path, self.handle)

    async def start(self) -> None:
        """Connect to the database, create the replication slot and start polling."""
        if isinstance(self._pool_or_dsn, str):
            self._pool = await asyncpg.create_pool(self._pool_or_dsn, min_size=1, max_size=4)
            self._owns_pool = True
            self._poll_conn = await asyncpg.connect(self._pool_or_dsn)
        else:
            self._pool = self._pool_or_dsn
            self._poll_conn = await self._pool.acquire()
        # Realtime's database sessions run in UTC, which shows in every timestamptz it sends.
        await self._poll_conn.execute("set time zone 'UTC'")
        self._poller = SlotPoller(
            self._poll_conn, self._deliver, faults=self.faults, config=self.config.poller
        )
        await self._poller.start()
        self._accepting = True

    async def stop(self) -> None:
        """Close every socket (1001, going away), stop polling and give back the connections."""
        # Clients reconnect after 1001; while the HTTP server lingers they must find Realtime gone.
        self._accepting = False
        await self.drop_sockets(1001)
        if self._poller is not None:
            await self._poller.stop()
            self._poller = None
        if self._poll_conn is not None:
            if self._owns_pool:
                await self._poll_conn.close()
            elif self._pool is not None:
                await self._pool.release(self._poll_conn)
            self._poll_conn = None
        if self._owns_pool and self._pool is not None:
            await self._pool.close()
        self._pool = None

    # Introspection for tests -----------------------------------------------------------------------

    @property
    def socket_count(self) -> int:
        """The number of open client sockets."""
        return len(self._sockets)

    @property
    def slot_name(self) -> str | None:
        """The name of the temporary replication slot, once started."""
        return self._poller.slot_name if self._poller is not None else None

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions currently receiving changes, over all sockets and channels."""
        return [
            sub
            for socket in self._sockets
            for channel in socket.channels.values()
            for sub in channel.subscriptions
        ]

    # Fault actions ---------------------------------------------------------------------------------

    async def drop_sockets(self, code: int = 1006) -> None:
        """Drop every client socket.

        ``1006`` aborts the TCP connection without a close frame (a network failure); any other code
        (1011 server error, 1012 service restart, 1001 going away) is sent in a close frame.
        """
        sockets = list(self._sockets)
        if code == 1006:
            for socket in sockets:
                transport = socket.request.transport
                if transport is not None:
                    transport.abort()
            return
        await asyncio.gather(
            *(socket.ws.close(code=code, message=b"") for socket in sockets), return_exceptions=True
        )

    async def push_system_error(
        self, topic: str | None = None, message: str = "Too many database timeouts"
    ) -> None:
        """Push a ``postgres_changes`` system error to every joined channel (or those of ``topic``).

        The channel stays joined. realtime-py reports CHANNEL_ERROR and rejoins on the same socket; that
        duplicate join gets its ok reply and then a ``phx_close`` with the old join ref, which realtime-py
        takes for its own channel and reports CLOSED.
        """
        if topic is not None and not topic.startswith(TOPIC_PREFIX):
            topic = TOPIC_PREFIX + topic
        for socket in list(self._sockets):
            for channel in list(socket.channels.values()):
                if topic is None or channel.topic == topic:
                    channel.push_system("postgres_changes", "error", message)

    async def restart_poller(self) -> None:
        """Drop and recreate the temporary slot: changes not yet polled are lost."""
        if self._poller is not None:
            await self._poller.restart()

    async def pause_polling(self) -> None:
        """Hold new changes in the slot until :meth:`resume_polling`, e.g. to put changes in flight."""
        if self._poller is not None:
            await self._poller.pause()

    def resume_polling(self) -> None:
        """Poll again after :meth:`pause_polling`."""
        if self._poller is not None:
            self._poller.resume()

    # Websocket -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Accept (or refuse) a websocket and serve it until it closes."""
        if not self._accepting:
            return web.json_response({"error": "Realtime is restarting, please standby"}, status=503)
        refused = self.faults.refuse_handshake
        if refused is not None:
            return web.json_response(
                {"error": _REFUSALS.get(refused, "Error connecting to Realtime")}, status=refused
            )
        serializer = negotiate(request.query.get("vsn"))
        if serializer is None:
            return web.json_response({"error": "Unsupported protocol version"}, status=403)
        apikey = request.headers.get("x-api-key") or request.query.get("apikey")
        try:
            verify(self._jwt_secret, apikey)
        except AuthError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        assert apikey is not None
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_SIZE)
        if not ws.can_prepare(request).ok:
            return web.json_response({"error": "Expected a websocket upgrade"}, status=400)
        await ws.prepare(request)
        socket = _Socket(request, ws, serializer, apikey)
        self._sockets.add(socket)
        writer = asyncio.create_task(socket.write_loop(), name="localsupabase.realtime.writer")
        try:
            await self._read_loop(socket)
        finally:
            self._sockets.discard(socket)
            for channel in list(socket.channels.values()):
                self._close_channel(channel, notify=False)
            socket.finish()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                await ws.close()
        return ws

    async def _read_loop(self, socket: _Socket) -> None:
        while True:
            try:
                message = await socket.ws.receive(timeout=self.config.idle_timeout)
            except TimeoutError:
                # Phoenix closes a socket that sent nothing for its timeout (60 s by default).
                await socket.ws.close(code=1000, message=b"")
                return
            if message.type is WSMsgType.TEXT:
                try:
                    frame = socket.serializer.decode(message.data)
                except FrameError:
                    logger.warning("ignoring a malformed frame", exc_info=True)
                    continue
                self._receive(socket, frame)
            elif message.type is not WSMsgType.BINARY:
                # Binary frames are V2 broadcasts, which this server does not relay; anything else ends.
                return

    def _receive(self, socket: _Socket, frame: Frame) -> None:
        if frame.topic == PHOENIX_TOPIC and frame.event == "heartbeat":
            socket.send(frame.reply("ok", {}))
        elif frame.event == "phx_join":
            self._join(socket, frame)
        elif frame.event == "phx_leave":
            channel = socket.channels.get(frame.topic)
            socket.send(frame.reply("ok", {}))
            if channel is not None:
                self._close_channel(channel, notify=True)
        elif (channel := socket.channels.get(frame.topic)) is None:
            socket.send(frame.reply("error", {"reason": "unmatched topic"}))
        elif frame.event == "access_token":
            self._access_token(channel, frame.payload)
        else:
            # Broadcast and presence are not part of this stand-in; Realtime answers neither with a reply.
            logger.debug("ignoring %s on %s", frame.event, frame.topic)

    def _join(self, socket: _Socket, frame: Frame) -> None:
        old = socket.channels.get(frame.topic)
        if old is not None:
            # Phoenix ends the old channel of a duplicate join; its phx_close follows the new reply.
            self._close_channel(old, notify=False)
        reply, channel = self._open_channel(socket, frame)
        socket.send(reply)
        if old is not None:
            socket.send(Frame(old.topic, "phx_close", {}, ref=old.join_ref, join_ref=old.join_ref))
        if channel is not None and channel.raw_bindings:
            self._schedule_subscribe(channel, 0.0)

    def _open_channel(self, socket: _Socket, frame: Frame) -> tuple[Frame, _Channel | None]:
        if not frame.topic.startswith(TOPIC_PREFIX):
            return frame.reply("error", {"reason": "unmatched topic"}), None
        if frame.topic == TOPIC_PREFIX:
            return frame.reply("error", {"reason": "TopicNameRequired: You must provide a topic name"}), None
        payload = frame.payload
        token = payload.get("user_token") or payload.get("access_token")
        if not isinstance(token, str) or token.startswith("sb_"):
            token = socket.apikey
        try:
            claims = verify(self._jwt_secret, token)
        except AuthError as exc:
            return frame.reply("error", {"reason": f"InvalidJWTToken: {exc}"}), None
        config = payload.get("config")
        requested = config.get("postgres_changes") if isinstance(config, dict) else None
        raw_bindings = [raw for raw in requested if raw is not None] if isinstance(requested, list) else []
        if not all(isinstance(raw, dict) for raw in raw_bindings):
            reason = "UnknownErrorOnChannel: every postgres_changes entry must be an object"
            return frame.reply("error", {"reason": reason}), None
        channel = _Channel(socket, frame.topic, frame.join_ref or frame.ref, raw_bindings, token, claims)
        socket.channels[frame.topic] = channel
        self._arm_expiry(channel)
        echoed = [{**raw, "id": binding_id(raw)} for raw in raw_bindings]
        return frame.reply("ok", {"postgres_changes": echoed}), channel

    def _access_token(self, channel: _Channel, payload: dict[str, Any]) -> None:
        token = payload.get("access_token")
        if not isinstance(token, str) or token.startswith("sb_") or token == channel.access_token:
            return
        try:
            claims = verify(self._jwt_secret, token)
        except AuthError as exc:
            self._shutdown(channel, str(exc))
            return
        channel.access_token = token
        channel.claims = claims
        self._arm_expiry(channel)
        if channel.raw_bindings:
            # The current subscriptions keep their old claims until the new ones are in place.
            self._schedule_subscribe(channel, random.uniform(*self.config.resubscribe_delay))

    def _arm_expiry(self, channel: _Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
        exp = channel.claims.get("exp")
        if isinstance(exp, int | float):
            delay = max(0.0, float(exp) - time.time())
            channel.expiry = asyncio.get_running_loop().call_later(delay, self._expire, channel)

    def _expire(self, channel: _Channel) -> None:
        overdue = max(0, int(time.time() - float(channel.claims["exp"])))
        self._shutdown(channel, f"Token has expired {overdue} seconds ago")

    def _shutdown(self, channel: _Channel, message: str) -> None:
        """End a channel as Realtime's shutdown response does: a system error, then ``phx_close``."""
        if channel.open:
            channel.push_system("system", "error", message)
            self._close_channel(channel, notify=True)

    def _close_channel(self, channel: _Channel, *, notify: bool) -> None:
        if not channel.open:
            return
        channel.open = False
        channel.subscriptions = []
        if channel.task is not None and channel.task is not asyncio.current_task():
            channel.task.cancel()
        if channel.expiry is not None:
            channel.expiry.cancel()
        if channel.socket.channels.get(channel.topic) is channel:
            del channel.socket.channels[channel.topic]
        if notify:
            channel.socket.send(
                Frame(channel.topic, "phx_close", {}, ref=channel.join_ref, join_ref=channel.join_ref)
            )

    # Subscribing -----------------------------------------------------------------------------------

    def _schedule_subscribe(self, channel: _Channel, delay: float) -> None:
        if channel.task is not None and channel.task is not asyncio.current_task():
            channel.task.cancel()
        channel.task = asyncio.create_task(
            self._subscribe(channel, delay), name=f"localsupabase.realtime.subscribe:{channel.topic}"
        )

    async def _subscribe(self, channel: _Channel, delay: float) -> None:
        try:
            await asyncio.sleep(delay + self.faults.subscribed_delay)
            if not channel.open:
                return
            failure = self.faults.subscribed_error
            if failure is not None:
                channel.push_system("postgres_changes", "error", failure)
                self._schedule_subscribe(channel, random.uniform(*self.config.subscribe_retry_delay))
                return
            try:
                bindings = [parse_binding(raw) for raw in channel.raw_bindings]
                assert self._pool is not None
                async with self._pool.acquire() as conn:
                    subscriptions = await subscribe(conn, bindings, channel.claims, channel)
            except BindingError as exc:
                channel.push_system("postgres_changes", "error", str(exc))
                return
            except SubscribeError as exc:
                channel.push_system("postgres_changes", "error", exc.message)
                if exc.retry:
                    self._schedule_subscribe(channel, random.uniform(*self.config.subscribe_retry_delay))
                return
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                channel.push_system("postgres_changes", "error", f"Unable to subscribe: {type(exc).__name__}")
                self._schedule_subscribe(channel, random.uniform(*self.config.subscribe_retry_delay))
                return
            if channel.open:
                channel.bindings = bindings
                channel.subscriptions = subscriptions
                channel.push_system("postgres_changes", "ok", "Subscribed to PostgreSQL")
        except asyncio.CancelledError:
            raise
        except Exception:
            # A crashed channel process: Phoenix tells the client with phx_error.
            logger.exception("channel %s crashed while subscribing", channel.topic)
            if channel.open:
                channel.socket.send(
                    Frame(channel.topic, "phx_error", {}, ref=channel.join_ref, join_ref=channel.join_ref)
                )
                self._close_channel(channel, notify=False)

    # Delivery --------------------------------------------------------------------------------------

    async def _deliver(self, conn: asyncpg.Connection, raw: str) -> bool:
        """Send one polled change to every channel that may see it; return whether any did."""
        subscriptions = self.subscriptions()
        if not subscriptions:
            return False
        self._router.max_record_bytes = self.config.poller.max_record_bytes
        delivered = False
        for routed in await self._router.route(conn, raw, subscriptions):
            visible: dict[_Channel, set[Binding]] = {}
            for sub in routed.subscriptions:
                if isinstance(sub.owner, _Channel):
                    visible.setdefault(sub.owner, set()).add(sub.binding)
            for channel, bindings in visible.items():
                if not channel.open:
                    continue
                # Realtime lists the ids of matching bindings in reverse binding order.
                ids = [binding.id for binding in reversed(channel.bindings) if binding in bindings]
                channel.socket.send(
                    Frame(channel.topic, "postgres_changes", {"ids": ids, "data": routed.data})
                )
                delivered = True
        return delivered
