"""`EditorClient`: the public calls of the asyncio editor client (mutations, waits, the view)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Literal

from syncd.client.connection import Connection, TokenSource
from syncd.client.errors import ClientClosed, EditorError
from syncd.client.events import Acknowledged, SavedUpTo
from syncd.client.frames import encode
from syncd.client.protocol import MAX_FRAME_BYTES, ClientProtocol, FrameTooLarge
from syncd.client.view import ChildTable, Frame, ProjectView
from syncd.client.waiting import Pong
from syncd.core.schema import Table
from syncd.wire import MUTATION_BURST, MUTATION_RATE

__all__ = ["EditorClient"]


class EditorClient(Connection):
    """An editor connection to one project on a syncd daemon.

    Args:
        url: the editor endpoint, like ``ws://127.0.0.1:8765/v1/editor``, or the daemon's address
            (``http://127.0.0.1:8765``, with the path a proxy serves it under if any): see
            :func:`syncd.wire.editor_url`.
        project_id: the project to open.
        client_id: this editor's id (a UUID string); a new random one by default. Mids are counted per
            client_id, so a caller that reuses a client_id must also pass ``first_mid`` above the
            mids it used before.
        token: a Supabase access token (JWT), or None to connect anonymously; or a function (plain or
            async) asked for it before each ``hello``, so that a reconnect an hour on sends a fresh
            token rather than an expired one (which is refused with 4401). A function that raises
            fails that opening as a connection that could not be made.
        resume: whether reconnecting sends ``resume {epoch, seq}`` to get only the missed changes;
            without it every reconnect (and every gap in the stream) starts from a snapshot.
        resend_unacked: whether mutations sent but not acknowledged before a reconnect are sent again
            (with their mids) on the new connection; without it their calls raise :class:`ClientClosed`.
        first_mid: the mid of the first mutation.
        open_timeout: seconds that opening may take, from dialling until the view is in sync.
        request_timeout: default seconds for the waiting methods.
        max_size: largest frame accepted from the server, in bytes (snapshots of big projects are
            large), or None for no limit.
        compression: ``"deflate"`` to offer permessage-deflate, None for plain frames.
        frame_buffer: how many server frames :meth:`next_frame` can catch up on; the oldest are
            dropped past it (``frames_dropped`` counts them).
        event_buffer: the same bound for ``event`` and ``presence`` frames kept for :meth:`next_event`.
        on_event: called with every ``event`` and ``presence`` frame; exceptions are logged.
        max_frame_bytes: the largest mutation frame to send: the daemon's ``gateway.max_frame_bytes``.
            A mutation over it is refused at once with ``EditorError`` ``too_large``, using no mid.
        mutation_rate, mutation_burst: the daemon's rate limit (``gateway.mutation_rate`` and
            ``gateway.mutation_burst``). Mutations are sent no faster, keeping a tenth of the burst in
            reserve; more wait in order. Faster, a bulk of them would be closed with 4429.

    Every method that waits takes ``timeout`` in seconds (default ``request_timeout``) and raises
    TimeoutError past it: a tool or test that talks to a stuck server fails instead of hanging. Wrapping
    a call in ``asyncio.timeout()`` works too; the shorter deadline wins.
    """

    def __init__(
        self,
        url: str,
        project_id: str,
        *,
        client_id: str | None = None,
        token: str | TokenSource | None = None,
        resume: bool = True,
        resend_unacked: bool = True,
        first_mid: int = 1,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_size: int | None = 64 * 1024 * 1024,
        compression: Literal["deflate"] | None = None,
        frame_buffer: int = 10_000,
        event_buffer: int = 1_000,
        on_event: Callable[[Frame], None] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        mutation_rate: float = MUTATION_RATE,
        mutation_burst: int = MUTATION_BURST,
    ) -> None:
        client_id = client_id if client_id is not None else str(uuid.uuid4())
        protocol = ClientProtocol(
            project_id,
            client_id,
            token=token if isinstance(token, str) else None,
            resume=resume,
            resend_unacked=resend_unacked,
            first_mid=first_mid,
            max_frame_bytes=max_frame_bytes,
        )
        super().__init__(
            protocol,
            url,
            open_timeout=open_timeout,
            request_timeout=request_timeout,
            max_size=max_size,
            compression=compression,
            frame_buffer=frame_buffer,
            event_buffer=event_buffer,
            on_event=on_event,
            mutation_rate=mutation_rate,
            mutation_burst=mutation_burst,
        )
        self.token_source = None if token is None or isinstance(token, str) else token
        self._ping_counter = 0

    # ---- the protocol's state, read through --------------------------------------------------------

    @property
    def view(self) -> ProjectView:
        """The local copy of the project."""
        return self.protocol.view

    @property
    def epoch(self) -> str | None:
        """Epoch of the stream the view follows; None before the first snapshot."""
        return self.protocol.epoch

    @property
    def seq(self) -> int:
        """Seq of the last change applied to the view."""
        return self.protocol.seq

    @property
    def saved_seq(self) -> int:
        """Highest seq the server reported saved."""
        return self.protocol.saved_seq

    @property
    def last_saved(self) -> SavedUpTo | None:
        """The last ``saved`` frame received."""
        return self.protocol.last_saved

    @property
    def acked_seq(self) -> int:
        """Highest seq of an ack received in the current epoch."""
        return self.protocol.acked_seq

    @property
    def session(self) -> str | None:
        """The server's id of the current connection, from its welcome."""
        return self.protocol.session

    @property
    def editors(self) -> list[Frame]:
        """The editors of the last ``presence`` frame."""
        return self.protocol.editors

    @property
    def editor_count(self) -> int:
        """How many editors the last ``presence`` frame counted (:attr:`editors` may list only the first)."""
        return self.protocol.editor_count

    @property
    def resyncs(self) -> int:
        """How many times a gap or a diverged view made the client connect again by itself."""
        return self.protocol.resyncs

    @property
    def token(self) -> str | None:
        """The token the last ``hello`` sent, or the next one sends when it is a string.

        Set a fresh one, or a token function, before :meth:`reconnect` after 4401.
        """
        return self.protocol.token

    @token.setter
    def token(self, value: str | TokenSource | None) -> None:
        if value is None or isinstance(value, str):
            self.protocol.token, self.token_source = value, None
        else:
            self.token_source = value

    @property
    def resume(self) -> bool:
        """The ``resume`` option."""
        return self.protocol.resume

    @property
    def resend_on_reconnect(self) -> bool:
        """The ``resend_unacked`` option (the name of the method that does the resending)."""
        return self.protocol.resend_on_reconnect

    @property
    def next_mid(self) -> int:
        """The mid the next mutation will get."""
        return self.protocol.next_mid

    @property
    def unacked(self) -> list[int]:
        """Mids of the mutations that have no answer yet, in order."""
        return self.protocol.unacked

    # ---- mutations -------------------------------------------------------------------------------

    async def patch(
        self,
        table: Table,
        id: str,
        set: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Acknowledged:
        """Change fields of one row and wait for the ack.

        Raises:
            EditorError: the server refused the mutation.
            ClientClosed: the connection closed before the answer came.
            TimeoutError: no answer within ``timeout`` (default ``request_timeout``) seconds.
        """
        return await self.wait_ack(self.send_patch(table, id, set), timeout=timeout)

    async def insert(
        self,
        table: ChildTable,
        row: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Acknowledged:
        """Add a row (it must hold ``id``) and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_insert(table, row), timeout=timeout)

    async def delete(self, table: ChildTable, id: str, *, timeout: float | None = None) -> Acknowledged:  # noqa: ASYNC109
        """Remove a row and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_delete(table, id), timeout=timeout)

    async def reorder(
        self,
        table: ChildTable,
        ids: Iterable[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Acknowledged:
        """Put the listed rows first, in this order, and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_reorder(table, ids), timeout=timeout)

    async def flush(self, *, timeout: float | None = None) -> Acknowledged:  # noqa: ASYNC109
        """Ask the server to save now and wait for the ack (the ``saved`` frame follows later)."""
        return await self.wait_ack(self.send_flush(), timeout=timeout)

    def send_patch(self, table: Table, id: str, set: Mapping[str, Any]) -> int:
        """Queue a ``patch`` without waiting; return its mid."""
        return self.send_mutation({"type": "patch", "table": table, "id": id, "set": dict(set)})

    def send_insert(self, table: ChildTable, row: Mapping[str, Any]) -> int:
        """Queue an ``insert`` without waiting; return its mid."""
        return self.send_mutation({"type": "insert", "table": table, "row": dict(row)})

    def send_delete(self, table: ChildTable, id: str) -> int:
        """Queue a ``delete`` without waiting; return its mid."""
        return self.send_mutation({"type": "delete", "table": table, "id": id})

    def send_reorder(self, table: ChildTable, ids: Iterable[str]) -> int:
        """Queue a ``reorder`` without waiting; return its mid."""
        return self.send_mutation({"type": "reorder", "table": table, "ids": list(ids)})

    def send_flush(self) -> int:
        """Queue a ``flush`` without waiting; return its mid."""
        return self.send_mutation({"type": "flush"})

    def send_mutation(self, frame: Mapping[str, Any]) -> int:
        """Give ``frame`` the next mid, queue it and return the mid; nothing in the frame is checked.

        The typed ``send_*`` methods use this; tests use it to send frames the server must refuse.

        Raises:
            EditorError: ``too_large``: the frame is over ``max_frame_bytes``; it is not sent.
            TypeError, ValueError: the frame cannot be written as JSON.
            RuntimeError: the client was never connected.
            ClientClosed: the connection is closed.
        """
        self._check_can_send()
        try:
            mid: int = self.protocol.mutation(frame)["mid"]
        except FrameTooLarge as exc:
            raise EditorError("too_large", str(exc), None) from None
        self._answers.expect(mid)
        self._kick()
        return mid

    def send_raw(self, frame: Mapping[str, Any] | str) -> None:
        """Queue a frame as it is (a mapping is written as JSON); no mid, no tracking. For tests."""
        self._check_can_send()
        self._raw.append(frame if isinstance(frame, str) else encode(dict(frame)))
        self._kick()

    async def wait_ack(self, mid: int, *, timeout: float | None = None) -> Acknowledged:  # noqa: ASYNC109
        """Wait for the answer to mutation ``mid``.

        Raises:
            EditorError: the server refused the mutation.
            ClientClosed: the connection closed before the answer came.
            TimeoutError: no answer within ``timeout`` (default ``request_timeout``) seconds.
            KeyError: no mutation with this mid is waiting, or its answer is too old to be kept.
        """
        future = self._answers.future(mid)
        async with asyncio.timeout(self._timeout(timeout)):
            return await asyncio.shield(future)

    def resend_unacked(self) -> list[int]:
        """Queue every unanswered mutation again, with its mid; return those mids.

        The client does this by itself after a reconnect, and after a snapshot that replaced a dropped
        backlog, when ``resend_unacked`` is on; the server acknowledges a mid it has already accepted
        again without applying it twice.
        """
        self._check_can_send()
        mids = self.protocol.resend_unacked()
        self._kick()
        return mids

    async def ping(self, t: Any = None, *, timeout: float | None = None) -> Pong:  # noqa: ASYNC109
        """Send ``ping`` and wait for the ``pong`` that echoes ``t`` (None picks a fresh number)."""
        self._check_can_send()
        if t is None:
            self._ping_counter += 1
            t = self._ping_counter
        self.protocol.ping(t)
        future = self._pings.add(t, asyncio.get_running_loop().time())
        self._kick()
        async with asyncio.timeout(self._timeout(timeout)):
            return await asyncio.shield(future)

    # ---- waiting on the stream -------------------------------------------------------------------

    async def wait_saved(self, seq: int | None = None, *, timeout: float | None = None) -> SavedUpTo:  # noqa: ASYNC109
        """Wait until the server reports every change up to ``seq`` saved (default: the last acked seq).

        Raises:
            ClientClosed: the connection closed first.
            TimeoutError: not saved within ``timeout`` (default ``request_timeout``) seconds.
        """
        target = self.acked_seq if seq is None else seq
        await self.wait_until(lambda: self.saved_seq >= target, timeout=timeout)
        last = self.last_saved
        if last is not None and last.seq == self.saved_seq:
            return last
        return SavedUpTo(self.saved_seq, None)

    async def wait_seq(self, seq: int, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the view has applied every change up to ``seq`` (for example an ack's seq)."""
        await self.wait_until(lambda: self.seq >= seq, timeout=timeout)

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` is true; it is checked after every frame and state change.

        Raises:
            ClientClosed: the connection closed while the predicate was still false.
            TimeoutError: still false after ``timeout`` (default ``request_timeout``) seconds.
        """
        async with asyncio.timeout(self._timeout(timeout)):
            await self._wait(predicate)

    async def next_frame(self, type: str | None = None, *, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """Return the oldest server frame not yet read here; with ``type``, skip frames of other types.

        Frames are applied to the view before they can be read here. Skipped frames are gone from
        this buffer (not from the view).

        Raises:
            ClientClosed: the connection closed and every buffered frame has been read.
            TimeoutError: no such frame within ``timeout`` (default ``request_timeout``) seconds.
        """
        async with asyncio.timeout(self._timeout(timeout)):
            while True:
                await self._wait(lambda: bool(self._frames))
                frame = self._frames.popleft()
                if type is None or frame.get("type") == type:
                    return frame

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield every server frame, as :meth:`next_frame` would, until the connection is closed."""
        while True:
            try:
                await self._wait(lambda: bool(self._frames))
            except ClientClosed:
                return
            yield self._frames.popleft()

    async def next_event(self, topic: str | None = None, *, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """Return the oldest unread ``event`` or ``presence`` frame; with ``topic``, only such events.

        Raises like :meth:`next_frame`.
        """
        async with asyncio.timeout(self._timeout(timeout)):
            while True:
                await self._wait(lambda: bool(self._events))
                frame = self._events.popleft()
                if topic is None or (frame.get("type") == "event" and frame.get("topic") == topic):
                    return frame
