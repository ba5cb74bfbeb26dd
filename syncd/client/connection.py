"""`Connection`: an editor client's asyncio machinery, a thin layer of ``websockets`` over `ClientProtocol`.

The protocol object decides everything about the stream (the view, gaps, mids, what to resend); this
module dials, reads and writes, reconnects when the protocol says so, and turns the protocol's events
into answers for waiting calls. `syncd.client.editor.EditorClient` puts the public calls on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, TypeAlias

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from syncd.client import events as ev
from syncd.client.errors import ClientClosed, EditorError
from syncd.client.frames import encode
from syncd.client.protocol import ClientProtocol
from syncd.client.view import Frame
from syncd.client.waiting import Answers, PingWaiters, retrieve
from syncd.core.pace import TokenBucket
from syncd.wire import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_PROTOCOL_ERROR,
    MUTATION_BURST,
    MUTATION_RATE,
    editor_url,
)

__all__ = ["ClientState", "Connection", "TokenSource"]

logger = logging.getLogger(__name__)

TokenSource: TypeAlias = Callable[[], "str | Awaitable[str | None] | None"]
"""A function that gives the token for the next ``hello`` (a coroutine function works too)."""

ClientState: TypeAlias = Literal["new", "connecting", "open", "closed"]
"""Where the client is: never connected, opening (or re-syncing), open, or closed."""


def _short(reason: str) -> str:
    """Cut a close reason to what a close frame can carry (123 bytes of UTF-8)."""
    return reason.encode()[:120].decode(errors="ignore")


@dataclass(eq=False, slots=True)
class _Link:
    """One WebSocket connection of the client, from hello until it is retired or lost.

    ``synced`` gets the `ev.Joined` event once the view is in sync on it, or None when the opening
    stream did not line up and the client must connect again.
    """

    ws: ClientConnection
    synced: asyncio.Future[ev.Joined | None]
    wake: asyncio.Event
    retired: bool = False
    reader: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None


class Connection:
    """The connections of one editor client: opening, reading, writing, re-syncing and closing.

    Args:
        protocol: the editor's state machine; this class feeds it and acts on what it returns.
        url, open_timeout, request_timeout, max_size, compression, frame_buffer, event_buffer,
        on_event: as `syncd.client.editor.EditorClient` documents them.
    """

    def __init__(
        self,
        protocol: ClientProtocol,
        url: str,
        *,
        open_timeout: float,
        request_timeout: float,
        max_size: int | None,
        compression: Literal["deflate"] | None,
        frame_buffer: int,
        event_buffer: int,
        on_event: Callable[[Frame], None] | None,
        mutation_rate: float = MUTATION_RATE,
        mutation_burst: int = MUTATION_BURST,
    ) -> None:
        self.protocol = protocol
        """The sans-I/O state machine behind this client: the view, seqs, mids, unacked mutations."""
        self.token_source: TokenSource | None = None
        """Asked for the token before each ``hello`` when set; else ``protocol.token`` is sent as is."""
        self.url = editor_url(url)
        self.project_id = protocol.project_id
        self.client_id = protocol.client_id
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.max_size = max_size
        self.compression = compression
        self.on_event = on_event
        self.errors: deque[EditorError] = deque(maxlen=1000)
        """``error`` frames that answered no waiting mutation (mid null, or a mid already acked)."""
        self.close_code: int | None = None
        """Close code of the last connection that ended; None while the first is open."""
        self.close_reason: str | None = None
        self.frames_dropped = 0
        """Server frames pushed out of the ``next_frame`` buffer unread."""

        self._state: ClientState = "new"
        self._link: _Link | None = None
        self._answers = Answers()
        self._pings = PingWaiters()
        self._raw: deque[str] = deque()  # send_raw() frames, written once the connection is live
        self._watchers: list[asyncio.Future[None]] = []
        self._frames: deque[Frame] = deque(maxlen=frame_buffer)
        self._events: deque[Frame] = deque(maxlen=event_buffer)
        self._tasks: set[asyncio.Task[None]] = set()  # resyncs; cancelled by close() and reconnect()
        self._closers: set[asyncio.Task[None]] = set()  # close handshakes; close() lets them finish
        # The daemon's rate limit, kept to (a tenth in reserve, see TokenBucket): faster, a bulk of
        # mutations would be closed with 4429 and its first refused mutation lost. Full at first, as the
        # daemon's is, whatever the loop's clock says then.
        self._pace = TokenBucket(mutation_rate, mutation_burst, 0.0, reserve=mutation_burst // 10)

    @property
    def state(self) -> ClientState:
        """``new``, ``connecting`` (also while re-syncing after a gap), ``open`` or ``closed``."""
        return self._state

    # ---- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> ev.Joined:
        """Open the connection, send ``hello`` and wait until the view is in sync.

        The hello carries ``resume {epoch, seq}`` when the client has followed a stream before (and
        ``resume`` is on). Returns once the snapshot, or every missed change, is applied.

        Raises:
            ClientClosed: the server closed the connection (4401, 4403, 4404, ...).
            TimeoutError: not in sync within ``open_timeout``.
            OSError, websockets.exceptions.InvalidHandshake: the WebSocket could not be opened.
            RuntimeError: the client is already connected.
        """
        if self._state in ("connecting", "open"):
            raise RuntimeError("already connected; use reconnect()")
        return await self._establish()

    async def reconnect(self) -> ev.Joined:
        """Close the current connection (if any) and connect again, resuming from the last applied seq.

        Mutations still unanswered are sent again with their mids once the view is in sync (unless
        ``resend_unacked`` is off), ahead of any sent later. Raises like :meth:`connect`.
        """
        await self._cancel_tasks()
        if self._link is not None:
            await self._retire(self._link, 1000, "reconnect")
        return await self._establish()

    async def close(self) -> None:
        """Close the connection; waiting calls raise :class:`ClientClosed` (code 1000)."""
        await self._cancel_tasks()
        await asyncio.gather(*self._closers, return_exceptions=True)
        link = self._link
        if link is not None:
            await self._retire(link, 1000, "")
            self._record_close(link)
        self.protocol.close()
        if self._state != "closed":
            self._state = "closed"
            self._fail_waiters(self._closed_error())
            self._raw.clear()
        self._notify()

    # ---- internals: connecting -------------------------------------------------------------------

    async def _establish(self) -> ev.Joined:
        """Dial, say hello and sync the view; connect again while the protocol says the stream did not fit."""
        self._state = "connecting"
        link: _Link | None = None
        try:
            async with asyncio.timeout(self.open_timeout):
                while True:
                    link = await self._dial()
                    joined = await link.synced
                    if joined is not None:
                        return joined
                    await self._retire(link, 1000, "resync")
        except BaseException as exc:
            self._opening_failed(link or self._link, exc)
            raise

    def _opening_failed(self, link: _Link | None, exc: BaseException) -> None:
        if link is not None and not link.retired:
            link.retired = True
            self._abort(link)
        if isinstance(exc, asyncio.CancelledError):
            self.protocol.disconnect()  # reconnect() or close() goes on from here
        else:
            self.protocol.close()
        if isinstance(exc, ClientClosed):
            self.close_code, self.close_reason = exc.code, exc.reason
        elif link is not None:
            self._record_close(link)
        if link is not None and self._link is link:
            self._link = None
        self._state = "closed"
        # A cancelled open belongs to close() or reconnect(), which decide what waiting calls get.
        if not isinstance(exc, asyncio.CancelledError):
            self._fail_waiters(self._closed_error())
        self._notify()

    async def _dial(self) -> _Link:
        if self.token_source is not None:
            self.protocol.token = await _ask(self.token_source)
        ws = await connect(
            self.url,
            open_timeout=None,  # _establish bounds the whole opening
            max_size=self.max_size,
            compression=self.compression,
        )
        synced: asyncio.Future[ev.Joined | None] = asyncio.get_running_loop().create_future()
        synced.add_done_callback(retrieve)
        link = _Link(ws, synced, asyncio.Event())
        self._link = link
        self.protocol.connection_made()
        # A server that closes at once (4401, 4404, ...) is reported by the reader through link.synced.
        link.reader = asyncio.create_task(self._read_loop(link), name="syncd.client.reader")
        link.writer = asyncio.create_task(self._write_loop(link), name="syncd.client.writer")
        return link

    async def _retire(self, link: _Link, code: int, reason: str) -> None:
        """End ``link`` on purpose; its reader stops without reporting a lost connection."""
        link.retired = True
        if self._link is link:
            self._link = None
            self.protocol.disconnect()
        if not link.synced.done():
            link.synced.set_exception(ClientClosed(code, reason))
        if link.writer is not None:
            link.writer.cancel()
        await link.ws.close(code, _short(reason))
        current = asyncio.current_task()
        tasks = [t for t in (link.reader, link.writer) if t is not None and t is not current]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _abort(self, link: _Link) -> None:
        if link.writer is not None:
            link.writer.cancel()
        if link.reader is not None and link.reader is not asyncio.current_task():
            link.reader.cancel()
        link.ws.transport.abort()

    def _record_close(self, link: _Link) -> None:
        code = link.ws.close_code
        self.close_code = code if code is not None else CLOSE_ABNORMAL
        self.close_reason = link.ws.close_reason or ""

    def _drop_link(self, link: _Link, error: ClientClosed) -> None:
        """``link`` is gone for good (closed by the server, or broken): fail everything that waits on it."""
        link.retired = True
        self.close_code, self.close_reason = error.code, error.reason
        if not link.synced.done():
            link.synced.set_exception(error)
        if link.writer is not None:
            link.writer.cancel()
        if self._link is link:
            self._link = None
            self._state = "closed"
            self._fail_waiters(error)
        self._notify()

    def _resync(self, link: _Link, event: ev.Resyncing) -> None:
        """Leave ``link`` and connect again, to recover missed or diverged state."""
        link.retired = True
        if not link.synced.done():
            link.synced.set_result(None)  # _establish() dials again
            return
        self._state = "connecting"
        logger.info("project %s: %s; reconnecting", self.project_id, event.reason)
        task = asyncio.create_task(self._run_resync(link), name="syncd.client.resync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_resync(self, link: _Link) -> None:
        await self._retire(link, 1000, "resync")
        try:
            await self._establish()
        except (ClientClosed, TimeoutError, OSError) as exc:
            # _establish has closed the client and failed the waiting calls; they report it.
            logger.warning("project %s: reconnecting after a gap failed: %s", self.project_id, exc)

    def _close_in_background(self, link: _Link, code: int, reason: str) -> None:
        """Send the close frame from a task: the reader that found the problem must not wait on it."""

        async def run() -> None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await link.ws.close(code, _short(reason))

        task = asyncio.create_task(run(), name="syncd.client.close")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- internals: reading and writing ----------------------------------------------------------

    async def _read_loop(self, link: _Link) -> None:
        try:
            async for message in link.ws:
                if link.retired:
                    return
                self._receive(link, message)
                if link.retired:
                    return
        except ConnectionClosed:
            pass
        except Exception:
            # A bug in the client's handling of a frame: end this connection, report it, keep the loop.
            logger.exception("project %s: failed to handle a server frame", self.project_id)
            if not link.retired:
                self.protocol.close()
                self.protocol.take_events()  # what the failed step reported half-way is not to be trusted
                self._drop_link(link, ClientClosed(CLOSE_INTERNAL_ERROR, "client failed to handle a frame"))
                self._close_in_background(link, CLOSE_INTERNAL_ERROR, "client failed to handle a frame")
            return
        if not link.retired:
            code = link.ws.close_code
            self.protocol.connection_lost(
                code if code is not None else CLOSE_ABNORMAL,
                link.ws.close_reason or "",
                asyncio.get_running_loop().time(),
            )
            self._handle_events(link, None)

    async def _write_loop(self, link: _Link) -> None:
        try:
            while not link.retired:
                # (text, whether it is a mutation: those count against the daemon's rate limit)
                texts = [(encode(frame), "mid" in frame) for frame in self.protocol.take_frames()]
                if self.protocol.phase == "live":
                    texts.extend((text, False) for text in self._raw)
                    self._raw.clear()
                if not texts:
                    link.wake.clear()
                    await link.wake.wait()
                    continue
                for text, mutation in texts:
                    if mutation:
                        await self._paced()
                    await link.ws.send(text)
        except ConnectionClosed:
            return  # the reader reports the close

    async def _paced(self) -> None:
        """Wait until the rate limit lets one more mutation go."""
        loop = asyncio.get_running_loop()
        # A token comes back at a known time, so sleeping until then is the wait, not a poll; the loop
        # is for asyncio waking a timer up to its clock's resolution early.
        while not self._pace.take(loop.time()):  # noqa: ASYNC110
            await asyncio.sleep(self._pace.wait(loop.time()))

    def _kick(self) -> None:
        if self._link is not None:
            self._link.wake.set()

    def _check_can_send(self) -> None:
        if self._state == "new":
            raise RuntimeError("not connected; call connect() first")
        if self._state == "closed":
            raise self._closed_error()

    # ---- internals: frames and events ------------------------------------------------------------

    def _receive(self, link: _Link, message: str | bytes) -> None:
        frame = self.protocol.receive_text(message)
        violated = self._handle_events(link, frame)
        if frame is not None and not violated:
            if self._frames.maxlen is not None and len(self._frames) == self._frames.maxlen:
                self.frames_dropped += 1
            self._frames.append(frame)
        link.wake.set()
        self._notify()

    def _handle_events(self, link: _Link, frame: Frame | None) -> bool:
        """Act on the protocol's events for ``frame`` (None: a lost connection); True after a violation."""
        violated = False
        for event in self.protocol.take_events():
            violated = violated or isinstance(event, ev.Violation)
            self._handle(link, event, frame)
        return violated

    def _handle(self, link: _Link, event: ev.ClientEvent, frame: Frame | None) -> None:
        match event:
            case ev.Joined():
                self._joined(link, event)
            case ev.Acknowledged():
                self._answers.settle(event.mid, event)
            case ev.Rejected():
                self._answers.settle(event.mid, EditorError(event.code, event.message, event.mid))
            case ev.Unanswered():
                self._answers.settle(event.mid, self._closed_error())
            case ev.ServerError():
                refusal = EditorError(event.code, event.message, event.mid)
                logger.warning("project %s: error from the server: %s", self.project_id, refusal)
                self.errors.append(refusal)
            case ev.PresenceChanged() | ev.Noticed() if frame is not None:
                self._on_event(frame)
            case ev.PongReceived():
                self._pings.settle(event.t, asyncio.get_running_loop().time())
            case ev.Resyncing():
                self._resync(link, event)
            case ev.Violation():
                logger.warning("project %s: the server broke the protocol: %s", self.project_id, event.reason)
                self._drop_link(link, ClientClosed(CLOSE_PROTOCOL_ERROR, _short(event.reason)))
                self._close_in_background(link, CLOSE_PROTOCOL_ERROR, event.reason)
            case ev.Disconnected():
                error = ClientClosed(event.code, event.reason)
                logger.info("project %s: connection closed: %s", self.project_id, error)
                self._drop_link(link, error)
            case _:
                pass  # the view, the seqs and saved_seq are read from the protocol

    def _joined(self, link: _Link, joined: ev.Joined) -> None:
        """The view is in sync on ``link``: answer connect(), and let the calls that failed wait again."""
        self._state = "open"
        self._answers.revive(self.protocol.unacked)
        if not link.synced.done():
            link.synced.set_result(joined)
        logger.info(
            "editor %s in sync on project %s at seq %d (epoch %s)",
            self.client_id,
            self.project_id,
            self.protocol.seq,
            self.protocol.epoch,
        )

    def _on_event(self, frame: Frame) -> None:
        self._events.append(frame)
        if self.on_event is not None:
            try:
                self.on_event(frame)
            except Exception:
                logger.exception("project %s: the on_event callback failed", self.project_id)

    # ---- internals: waiting ----------------------------------------------------------------------

    def _fail_waiters(self, error: ClientClosed) -> None:
        self._answers.fail_all(error)
        self._pings.fail_all(error)

    def _closed_error(self) -> ClientClosed:
        code = self.close_code if self.close_code is not None else CLOSE_ABNORMAL
        return ClientClosed(code, self.close_reason or "")

    def _timeout(self, timeout: float | None) -> float:
        return self.request_timeout if timeout is None else timeout

    async def _wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._state == "closed":
                raise self._closed_error()
            if self._state == "new":
                raise RuntimeError("not connected; call connect() first")
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._watchers.append(future)
            await future  # a cancelled wait leaves a done future behind, which _notify() skips

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)


async def _ask(source: TokenSource) -> str | None:
    """The token a token function gives, checked: a wrong value fails the opening, not the hello."""
    token = source()
    if inspect.isawaitable(token):
        token = await token
    if token is not None and not isinstance(token, str):
        raise TypeError(f"the token function returned {type(token).__name__}, not a string or None")
    return token
