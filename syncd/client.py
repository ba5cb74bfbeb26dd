"""An editor client of the syncd WebSocket protocol, for tests, benchmarks and Python tools.

It speaks protocol version 1 as ``docs/protocol.md`` describes it, on the ``websockets`` asyncio API::

    async with EditorClient("ws://127.0.0.1:8765/v1/editor", project_id) as client:
        ack = await client.patch("scenes", scene_id, {"heading": "Dawn"})
        await client.wait_saved(ack.seq)
        print(client.view.scenes[scene_id]["heading"])

What the client does for its caller:

- ``view`` is a copy of the project's live rows, built only from what the server sends (the ``snapshot``
  and every ``change``). A mutation shows in the view when its own ``change`` comes back, not when it
  is sent: the client never guesses the outcome of an edit.
- Every mutation gets the next ``mid`` of this ``client_id``; mids keep rising across reconnects. The
  coroutine methods (:meth:`EditorClient.patch` and the like) return the :class:`Ack`, or raise
  :class:`EditorError` when the server answers that mid with an ``error`` frame. The ``send_*`` methods
  queue a mutation and return its mid at once; :meth:`EditorClient.wait_ack` waits for the answer later.
- A ``snapshot`` after the opening means the server dropped this connection's backlog (it was not
  reading fast enough): the view is replaced, and unanswered mutations are sent again, since their
  acks may have been in the dropped frames.
- The ``change`` stream is checked for gaps. A ``change`` whose ``seq`` is not the next one means frames
  were missed: the client drops the connection and reconnects, resuming from the last ``seq`` it
  applied (or, with ``resume=False``, asking for a fresh snapshot). Mutations that were sent but not
  acknowledged are sent again with the same mids; the server acknowledges them again without applying
  them twice.
- A connection that the server closes (4401, 4403, 4404, 4408, 4429, 1012, ...) is not reopened by
  itself: waiting calls raise :class:`ClientClosed` with the code and reason, which stay readable in
  ``close_code`` and ``close_reason``; :meth:`EditorClient.reconnect` opens a new one.
- Every server frame is also kept, as a parsed dict, in a bounded buffer that
  :meth:`EditorClient.next_frame` and :meth:`EditorClient.frames` read; ``event`` and ``presence``
  frames go to the ``on_event`` callback and to :meth:`EditorClient.next_event`.

Use a client from the event loop that created it: it is not thread-safe. Any number of tasks may
call its methods at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from syncd.core.schema import ORDER_FIELD, SIDE_TABLES, TABLES, Table
from syncd.errors import SyncdError

__all__ = [
    "CLOSE_CODES",
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "Ack",
    "ClientClosed",
    "EditorClient",
    "EditorError",
    "Frame",
    "Pong",
    "ProjectView",
    "Row",
    "Saved",
    "Welcome",
]

logger = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1

Frame: TypeAlias = dict[str, Any]
"""One protocol frame, parsed from (or to be written as) a JSON object."""

Row: TypeAlias = dict[str, Any]
"""One row of ``projects``, ``scenes`` or ``clips`` as the server sends it, keyed by column name."""

ChildTable: TypeAlias = Literal["scenes", "clips"]
"""A table whose rows editors may insert, delete and reorder."""

ClientState: TypeAlias = Literal["new", "connecting", "open", "closed"]
"""Where the client is: never connected, opening (or re-syncing), open, or closed."""

ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "conflict",
        "too_large",
        "rate_limited",
        "unavailable",
        "internal",
    }
)
"""The ``code`` values of ``error`` frames."""

CLOSE_CODES: Final[dict[int, str]] = {
    4401: "unauthorized",
    4403: "forbidden",
    4404: "project not found",
    4408: "hello timeout",
    4429: "rate limited",
    1012: "daemon restarting",
}
"""The WebSocket close codes the server uses, with their meaning."""

_CHANGE_OPS: Final = frozenset({"insert", "update", "delete"})
_KEPT_ANSWERS: Final = 10_000  # answers kept for wait_ack() after nobody awaited them
_MAX_SYNC_ATTEMPTS: Final = 3  # connections tried in a row before an unsyncable stream is a protocol error
_MAX_RESYNCS_IN_A_ROW: Final = 3  # gap recoveries without an in-order change in between
_CLOSE_PROTOCOL_ERROR: Final = 1002
_CLOSE_INTERNAL_ERROR: Final = 1011
_CLOSE_ABNORMAL: Final = 1006

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server accepted ``hello`` and the view is in sync.

    Args:
        project_id: the project that was opened.
        epoch: the project's stream epoch; a new one means the daemon restarted and seqs begin again.
        seq: the project's latest seq when the server said welcome.
        session: the server's id of this connection (for its logs).
        resumed: True when the missed changes were replayed, False when a snapshot replaced the view.
    """

    project_id: str
    epoch: str
    seq: int
    session: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """The server made a mutation durable.

    Args:
        mid: the mutation id that was acknowledged.
        seq: the seq the server gave the mutation (its ``change`` carries the same seq).
    """

    mid: int
    seq: int


@dataclass(frozen=True, slots=True)
class Saved:
    """Every change up to ``seq`` is in the database.

    Args:
        seq: the highest seq that is saved.
        at: the server's ISO-8601 time of the save; None when the value came from a snapshot.
    """

    seq: int
    at: str | None


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ``ping``.

    Args:
        t: the value sent with the ping, echoed back.
        rtt: seconds from queueing the ping to reading the pong, on the event loop's clock.
    """

    t: Any
    rtt: float


class EditorError(SyncdError):
    """The server answered a request with an ``error`` frame.

    Args:
        code: one of :data:`ERROR_CODES` (``bad_request``, ``conflict``, ...).
        message: the server's explanation.
        mid: the mutation the error is about, or None for errors about the connection.
    """

    def __init__(self, code: str, message: str, mid: int | None) -> None:
        super().__init__(f"{code}: {message}" if mid is None else f"{code} (mid {mid}): {message}")
        self.code = code
        self.message = message
        self.mid = mid


class ClientClosed(ConnectionClosed):
    """The connection to the server is closed, so the awaited answer will not come on it.

    Args:
        code: the WebSocket close code (4401 unauthorized, 1012 daemon restarting, ...; 1006 when the
            connection dropped without a close frame).
        reason: the close reason, possibly empty.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(Close(code, reason) if code != _CLOSE_ABNORMAL else None, None)
        self._code = code
        self._reason = reason

    @property
    def code(self) -> int:
        """The WebSocket close code."""
        return self._code

    @property
    def reason(self) -> str:
        """The close reason."""
        return self._reason

    def __str__(self) -> str:
        meaning = CLOSE_CODES.get(self._code)
        text = f"connection closed with code {self._code}"
        if meaning:
            text += f" ({meaning})"
        return f"{text}: {self._reason}" if self._reason else text


class _BadFrame(ValueError):
    """A server frame that breaks the protocol."""


# --------------------------------------------------------------------------------------------------
# The local view


class ProjectView:
    """The client's copy of one project's live rows, built from ``snapshot`` and ``change`` frames.

    ``project`` is the project row (None before the first snapshot); ``scenes`` and ``clips`` map row
    ids to rows. The rows are the client's own dicts: read them, don't change them.
    """

    def __init__(self) -> None:
        self.project: Row | None = None
        self.scenes: dict[str, Row] = {}
        self.clips: dict[str, Row] = {}
        self.sides: dict[str, dict[str, Row]] = {table: {} for table in SIDE_TABLES}
        """The read-only rows that editors follow: ``exports`` and ``audio_files``, by id."""

    def rows(self, table: Table) -> dict[str, Row]:
        """Return the rows of ``table`` by id (for ``projects``: the project row, if any)."""
        if table == "scenes":
            return self.scenes
        if table == "clips":
            return self.clips
        if self.project is None:
            return {}
        return {str(self.project["id"]): self.project}

    def ordered(self, table: ChildTable) -> list[Row]:
        """Return the rows of ``table`` in the editor's order: by ``scene_index``/``order_index``, then id."""
        order_field = ORDER_FIELD[table]
        return sorted(self.rows(table).values(), key=lambda row: (row.get(order_field, 0), str(row["id"])))

    def as_dict(self) -> dict[str, Any]:
        """Return the view as ``{"project", "scenes", "clips"}`` with ordered row lists, to compare views."""
        return {"project": self.project, "scenes": self.ordered("scenes"), "clips": self.ordered("clips")}

    def reset(self, project: Row | None, scenes: Iterable[Row], clips: Iterable[Row]) -> None:
        """Replace the whole view, as a ``snapshot`` does."""
        self.project = dict(project) if project is not None else None
        self.scenes = {str(row["id"]): dict(row) for row in scenes}
        self.clips = {str(row["id"]): dict(row) for row in clips}

    def apply(self, change: Frame) -> bool:
        """Apply one validated ``change`` frame.

        Returns:
            False when the change does not fit the view (an update of a row the view does not hold),
            which means the view has diverged from the server's; True otherwise.
        """
        table: Table = change["table"]
        op: str = change["op"]
        row_id: str = change["id"]
        if table == "projects":
            return self._apply_to_project(op, row_id, change)
        if table not in TABLES:
            rows = self.sides.setdefault(table, {})
        else:
            rows = self.scenes if table == "scenes" else self.clips
        if op == "insert":
            rows[row_id] = {**change["row"], "id": row_id}
        elif op == "update":
            row = rows.get(row_id)
            if row is None:
                return False
            row.update(change["set"])
        else:
            rows.pop(row_id, None)
        return True

    def _apply_to_project(self, op: str, row_id: str, change: Frame) -> bool:
        if op == "insert":
            self.project = {**change["row"], "id": row_id}
        elif op == "update":
            if self.project is None or self.project.get("id") != row_id:
                return False
            self.project.update(change["set"])
        elif self.project is not None and self.project.get("id") == row_id:
            self.project = None
        return True


# --------------------------------------------------------------------------------------------------
# Frame checks: the client relies on these fields, so it refuses frames without them.


def _get(frame: Frame, key: str, kind: type[_T]) -> _T:
    value = frame.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadFrame(f"{frame.get('type')}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _get_optional_int(frame: Frame, key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    return _get(frame, key, int)


def _get_rows(frame: Frame, key: str) -> list[Row]:
    rows = _get(frame, key, list)
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise _BadFrame(f"{frame.get('type')}.{key}: every row must be an object with a string id")
    return rows


def _check_change(frame: Frame) -> int:
    seq = _get(frame, "seq", int)
    # A table this client does not know is kept as it comes (protocol §4: tables may be added).
    _get(frame, "table", str)
    if _get(frame, "op", str) not in _CHANGE_OPS:
        raise _BadFrame(f"change.op: unknown op {frame['op']!r}")
    _get(frame, "id", str)
    if frame["op"] == "insert":
        _get(frame, "row", dict)
    elif frame["op"] == "update":
        _get(frame, "set", dict)
    return seq


def _ping_key(t: Any) -> str:
    return json.dumps(t, sort_keys=True, separators=(",", ":"))


def _short(reason: str) -> str:
    """Cut a close reason to what a close frame can carry (123 bytes of UTF-8)."""
    return reason.encode()[:120].decode(errors="ignore")


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Answers nobody awaits must not be reported as "exception never retrieved"; awaiting later still raises.
    if not future.cancelled():
        future.exception()


# --------------------------------------------------------------------------------------------------
# Connection bookkeeping


@dataclass(frozen=True, slots=True)
class _Redo:
    """The stream after welcome did not line up; connect again (from a snapshot)."""


@dataclass(eq=False, slots=True)
class _Link:
    """One WebSocket connection of the client, from hello until it is retired or lost."""

    ws: ClientConnection
    resume: tuple[str, int] | None
    synced: asyncio.Future[Welcome | _Redo]
    welcome: Welcome | None = None
    resumable: bool = False
    retired: bool = False
    reader: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None


@dataclass(eq=False, slots=True)
class _Pending:
    """A mutation that has no answer yet."""

    data: str
    future: asyncio.Future[Ack]
    sent: bool = False


_Outgoing: TypeAlias = tuple[str, int | None, bool]
"""A queued frame: its JSON text, its mid (mutations only), and whether it is a ping."""


@dataclass(eq=False, slots=True)
class _PingWait:
    data: str
    waiters: list[tuple[asyncio.Future[Pong], float]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# The client


class EditorClient:
    """An editor connection to one project on a syncd daemon.

    Args:
        url: the editor endpoint, like ``ws://127.0.0.1:8765/v1/editor``.
        project_id: the project to open.
        client_id: this editor's id (a UUID string); a new random one by default. Mids are counted per
            client_id, so a caller that reuses a client_id must also pass ``first_mid`` above the
            mids it used before.
        token: a Supabase access token (JWT), or None to connect anonymously.
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
        token: str | None = None,
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
    ) -> None:
        self.url = url
        self.project_id = project_id
        self.client_id = client_id if client_id is not None else str(uuid.uuid4())
        self.token = token
        self.resume = resume
        self.resend_on_reconnect = resend_unacked
        """The ``resend_unacked`` option (the name of the method that does the resending)."""
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.max_size = max_size
        self.compression = compression
        self.on_event = on_event

        self.view = ProjectView()
        """The local copy of the project."""
        self.epoch: str | None = None
        """Epoch of the stream the view follows; None before the first snapshot."""
        self.seq = 0
        """Seq of the last change applied to the view."""
        self.saved_seq = 0
        """Highest seq the server reported saved."""
        self.last_saved: Saved | None = None
        """The last ``saved`` frame received."""
        self.acked_seq = 0
        """Highest seq of an ack received in the current epoch."""
        self.session: str | None = None
        """The server's id of the current connection, from its welcome."""
        self.editors: list[Frame] = []
        """The editors of the last ``presence`` frame."""
        self.errors: deque[EditorError] = deque(maxlen=1000)
        """``error`` frames that answered no waiting mutation (mid null, or a mid already acked)."""
        self.close_code: int | None = None
        """Close code of the last connection that ended; None while the first is open."""
        self.close_reason: str | None = None
        self.frames_dropped = 0
        """Server frames pushed out of the ``next_frame`` buffer unread."""
        self.resyncs = 0
        """How many times a gap or a diverged view made the client connect again by itself."""

        self._state: ClientState = "new"
        self._link: _Link | None = None
        self._next_mid = first_mid
        self._unacked: dict[int, _Pending] = {}
        self._answered: OrderedDict[int, asyncio.Future[Ack]] = OrderedDict()
        self._pings: dict[str, _PingWait] = {}
        self._ping_counter = 0
        self._outgoing: deque[_Outgoing] = deque()
        self._wake_writer = asyncio.Event()
        self._watchers: list[asyncio.Future[None]] = []
        self._frames: deque[Frame] = deque(maxlen=frame_buffer)
        self._events: deque[Frame] = deque(maxlen=event_buffer)
        self._tasks: set[asyncio.Task[None]] = set()  # resyncs; cancelled by close() and reconnect()
        self._closers: set[asyncio.Task[None]] = set()  # close handshakes; close() lets them finish
        self._resyncs_in_a_row = 0
        self._debug = logger.isEnabledFor(logging.DEBUG)

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """``new``, ``connecting`` (also while re-syncing after a gap), ``open`` or ``closed``."""
        return self._state

    async def __aenter__(self) -> EditorClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> Welcome:
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
        return await self._establish(self._resume_point())

    async def reconnect(self) -> Welcome:
        """Close the current connection (if any) and connect again, resuming from the last applied seq.

        Mutations still unanswered are sent again with their mids once the view is in sync (unless
        ``resend_unacked`` is off), ahead of any sent later. Raises like :meth:`connect`.
        """
        await self._cancel_tasks()
        if self._link is not None:
            await self._retire(self._link, 1000, "reconnect")
        return await self._establish(self._resume_point())

    async def close(self) -> None:
        """Close the connection; waiting calls raise :class:`ClientClosed` (code 1000)."""
        await self._cancel_tasks()
        await asyncio.gather(*self._closers, return_exceptions=True)
        link = self._link
        if link is not None:
            await self._retire(link, 1000, "")
            self._record_close(link)
        if self._state != "closed":
            self._state = "closed"
            self._fail_waiters(self._closed_error())
            self._outgoing.clear()
        self._notify()

    # ---- mutations -------------------------------------------------------------------------------

    async def patch(
        self,
        table: Table,
        id: str,
        set: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Ack:
        """Change fields of one row and wait for the ack.

        Raises:
            EditorError: the server refused the mutation.
            ClientClosed: the connection closed before the answer came.
            TimeoutError: no answer within ``timeout`` (default ``request_timeout``) seconds.
        """
        return await self.wait_ack(self.send_patch(table, id, set), timeout=timeout)

    async def insert(self, table: ChildTable, row: Mapping[str, Any], *, timeout: float | None = None) -> Ack:  # noqa: ASYNC109
        """Add a row (it must hold ``id``) and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_insert(table, row), timeout=timeout)

    async def delete(self, table: ChildTable, id: str, *, timeout: float | None = None) -> Ack:  # noqa: ASYNC109
        """Remove a row and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_delete(table, id), timeout=timeout)

    async def reorder(self, table: ChildTable, ids: Iterable[str], *, timeout: float | None = None) -> Ack:  # noqa: ASYNC109
        """Put the listed rows first, in this order, and wait for the ack; raises like :meth:`patch`."""
        return await self.wait_ack(self.send_reorder(table, ids), timeout=timeout)

    async def flush(self, *, timeout: float | None = None) -> Ack:  # noqa: ASYNC109
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
            TypeError, ValueError: the frame cannot be written as JSON.
            RuntimeError: the client was never connected.
            ClientClosed: the connection is closed.
        """
        self._check_can_send()
        mid = self._next_mid
        body = {"type": frame.get("type"), "mid": mid}
        body.update((key, value) for key, value in frame.items() if key not in ("type", "mid"))
        data = json.dumps(body, separators=(",", ":"), allow_nan=False)
        self._next_mid = mid + 1
        self._unacked[mid] = _Pending(data, self._new_future())
        self._enqueue(data, mid)
        return mid

    def send_raw(self, frame: Mapping[str, Any] | str) -> None:
        """Queue a frame as it is (a mapping is written as JSON); no mid, no tracking. For tests."""
        self._check_can_send()
        data = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        self._enqueue(data, None)

    @property
    def next_mid(self) -> int:
        """The mid the next mutation will get."""
        return self._next_mid

    @property
    def unacked(self) -> list[int]:
        """Mids of the mutations that have no answer yet, in order."""
        return list(self._unacked)

    async def wait_ack(self, mid: int, *, timeout: float | None = None) -> Ack:  # noqa: ASYNC109
        """Wait for the answer to mutation ``mid``.

        Raises:
            EditorError: the server refused the mutation.
            ClientClosed: the connection closed before the answer came.
            TimeoutError: no answer within ``timeout`` (default ``request_timeout``) seconds.
            KeyError: no mutation with this mid is waiting, or its answer is too old to be kept.
        """
        pending = self._unacked.get(mid)
        future = pending.future if pending is not None else self._answered.get(mid)
        if future is None:
            raise KeyError(f"no mutation with mid {mid} is waiting or recently answered")
        async with asyncio.timeout(self._timeout(timeout)):
            return await asyncio.shield(future)

    def resend_unacked(self) -> list[int]:
        """Queue every unanswered mutation again, with its mid; return those mids.

        The client does this by itself after a reconnect, and after a snapshot that replaced a dropped
        backlog, when ``resend_unacked`` is on; the server acknowledges a mid it has already accepted
        again without applying it twice.
        """
        self._check_can_send()
        queued = {mid for _, mid, _ in self._outgoing if mid is not None}
        mids = [mid for mid in self._unacked if mid not in queued]
        for mid in mids:
            self._enqueue(self._unacked[mid].data, mid)
        return mids

    async def ping(self, t: Any = None, *, timeout: float | None = None) -> Pong:  # noqa: ASYNC109
        """Send ``ping`` and wait for the ``pong`` that echoes ``t`` (None picks a fresh number)."""
        self._check_can_send()
        if t is None:
            self._ping_counter += 1
            t = self._ping_counter
        key = _ping_key(t)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Pong] = loop.create_future()
        future.add_done_callback(_retrieve)
        wait = self._pings.get(key)
        if wait is None:
            wait = self._pings[key] = _PingWait(json.dumps({"type": "ping", "t": t}, separators=(",", ":")))
            self._enqueue(wait.data, None, ping=True)
        wait.waiters.append((future, loop.time()))
        async with asyncio.timeout(self._timeout(timeout)):
            return await asyncio.shield(future)

    # ---- waiting on the stream -------------------------------------------------------------------

    async def wait_saved(self, seq: int | None = None, *, timeout: float | None = None) -> Saved:  # noqa: ASYNC109
        """Wait until the server reports every change up to ``seq`` saved (default: the last acked seq).

        Raises:
            ClientClosed: the connection closed first.
            TimeoutError: not saved within ``timeout`` (default ``request_timeout``) seconds.
        """
        target = self.acked_seq if seq is None else seq
        await self.wait_until(lambda: self.saved_seq >= target, timeout=timeout)
        if self.last_saved is not None and self.last_saved.seq == self.saved_seq:
            return self.last_saved
        return Saved(self.saved_seq, None)

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

    # ---- internals: connecting -------------------------------------------------------------------

    def _resume_point(self) -> tuple[str, int] | None:
        if self.resume and self.epoch is not None:
            return (self.epoch, self.seq)
        return None

    async def _establish(self, resume: tuple[str, int] | None) -> Welcome:
        """Dial, say hello and sync the view; retry from a snapshot if the resumed stream does not fit."""
        self._state = "connecting"
        link: _Link | None = None
        try:
            async with asyncio.timeout(self.open_timeout):
                for _ in range(_MAX_SYNC_ATTEMPTS):
                    link = await self._dial(resume)
                    outcome = await link.synced
                    if isinstance(outcome, Welcome):  # _sync_done() has made the link live
                        return outcome
                    await self._retire(link, 1000, "resync")
                    resume = None
                raise ClientClosed(_CLOSE_PROTOCOL_ERROR, "the change stream never lined up with the view")
        except BaseException as exc:
            link = link or self._link
            if link is not None and not link.retired:
                link.retired = True
                self._abort(link)
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
            raise

    async def _dial(self, resume: tuple[str, int] | None) -> _Link:
        ws = await connect(
            self.url,
            open_timeout=None,  # _establish bounds the whole opening
            max_size=self.max_size,
            compression=self.compression,
        )
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "project_id": self.project_id,
            "client_id": self.client_id,
            "token": self.token,
            "resume": {"epoch": resume[0], "seq": resume[1]} if resume is not None else None,
        }
        synced: asyncio.Future[Welcome | _Redo] = asyncio.get_running_loop().create_future()
        synced.add_done_callback(_retrieve)
        link = _Link(ws, resume, synced)
        self._link = link
        link.reader = asyncio.create_task(self._read_loop(link), name="syncd.client.reader")
        # A server that closes at once (4401, 4404, ...) is reported by the reader through link.synced.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(hello, separators=(",", ":")))
        if self._debug:
            logger.debug("hello sent for project %s (resume %s)", self.project_id, resume)
        return link

    def _sync_done(self, link: _Link, welcome: Welcome) -> None:
        """The view is in sync on ``link``: make it live now, in the same step as the frame that did it.

        Going live here rather than where ``connect()`` resumes leaves no moment in which a later frame
        (a gap) or a ``close()`` could see a synced link without its writer.
        """
        link.synced.set_result(welcome)
        self._go_live(link)

    def _go_live(self, link: _Link) -> None:
        """Requeue what the old connection left (see ``resend_unacked``) and start writing on ``link``."""
        previous = self._outgoing
        outgoing: deque[_Outgoing] = deque()
        for mid, pending in list(self._unacked.items()):
            if pending.sent and not self.resend_on_reconnect:
                del self._unacked[mid]
                self._answer(mid, pending, self._closed_error())
                continue
            pending.sent = False
            if pending.future.done():  # failed when the old connection was lost; a fresh one for wait_ack
                pending.future = self._new_future()
            outgoing.append((pending.data, mid, False))
        # Unsent raw frames keep their place; pings are sent again whether or not they went out before.
        outgoing.extend(item for item in previous if item[1] is None and not item[2])
        outgoing.extend((wait.data, None, True) for wait in self._pings.values())
        self._outgoing = outgoing
        self._state = "open"
        link.writer = asyncio.create_task(self._write_loop(link), name="syncd.client.writer")
        self._wake_writer.set()
        self._notify()
        logger.info(
            "editor %s in sync on project %s at seq %d (epoch %s)",
            self.client_id,
            self.project_id,
            self.seq,
            self.epoch,
        )

    async def _retire(self, link: _Link, code: int, reason: str) -> None:
        """End ``link`` on purpose; its reader stops without reporting a lost connection."""
        link.retired = True
        if self._link is link:
            self._link = None
        if not link.synced.done():
            link.synced.set_exception(ClientClosed(code, reason))
        if link.writer is not None:
            link.writer.cancel()
        await link.ws.close(code, _short(reason))
        current = asyncio.current_task()
        tasks = [t for t in (link.reader, link.writer) if t is not None and t is not current]
        for task in tasks:
            if task is link.writer:  # it may have started while the close frame was on its way
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _abort(self, link: _Link) -> None:
        if link.writer is not None:
            link.writer.cancel()
        if link.reader is not None and link.reader is not asyncio.current_task():
            link.reader.cancel()
        link.ws.transport.abort()

    def _record_close(self, link: _Link) -> None:
        code = link.ws.close_code
        self.close_code = code if code is not None else _CLOSE_ABNORMAL
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

    def _resync(self, link: _Link, *, use_resume: bool, why: str) -> None:
        """Leave ``link`` and connect again in the background, to recover missed or diverged state."""
        link.retired = True
        if not link.synced.done():
            link.synced.set_result(_Redo())
            return
        self._resyncs_in_a_row += 1
        if self._resyncs_in_a_row > _MAX_RESYNCS_IN_A_ROW:
            self._violation(link, f"{why}, again after {_MAX_RESYNCS_IN_A_ROW} reconnects")
            return
        self.resyncs += 1
        self._state = "connecting"
        logger.info("project %s: %s; reconnecting", self.project_id, why)
        task = asyncio.create_task(self._run_resync(link, use_resume), name="syncd.client.resync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_resync(self, link: _Link, use_resume: bool) -> None:
        await self._retire(link, 1000, "resync")
        try:
            await self._establish(self._resume_point() if use_resume else None)
        except (ClientClosed, TimeoutError, OSError) as exc:
            # _establish has closed the client and failed the waiting calls; they report it.
            logger.warning("project %s: reconnecting after a gap failed: %s", self.project_id, exc)

    def _violation(self, link: _Link, reason: str) -> None:
        logger.warning("project %s: the server broke the protocol: %s", self.project_id, reason)
        self._drop_link(link, ClientClosed(_CLOSE_PROTOCOL_ERROR, _short(reason)))
        self._close_in_background(link, _CLOSE_PROTOCOL_ERROR, reason)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _close_in_background(self, link: _Link, code: int, reason: str) -> None:
        """Send the close frame from a task: the reader that found the problem must not wait on it."""

        async def run() -> None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await link.ws.close(code, _short(reason))

        task = asyncio.create_task(run(), name="syncd.client.close")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

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
                self._drop_link(link, ClientClosed(_CLOSE_INTERNAL_ERROR, "client failed to handle a frame"))
                self._close_in_background(link, _CLOSE_INTERNAL_ERROR, "client failed to handle a frame")
            return
        if not link.retired:
            code = link.ws.close_code
            error = ClientClosed(code if code is not None else _CLOSE_ABNORMAL, link.ws.close_reason or "")
            logger.info("project %s: connection closed: %s", self.project_id, error)
            self._drop_link(link, error)

    async def _write_loop(self, link: _Link) -> None:
        ws = link.ws
        try:
            while not link.retired:
                while self._outgoing and not link.retired:
                    data, mid, _ = self._outgoing.popleft()
                    if mid is not None:
                        pending = self._unacked.get(mid)
                        if pending is None:  # answered while it waited here (a resend raced its ack)
                            continue
                        pending.sent = True
                    await ws.send(data)
                self._wake_writer.clear()
                await self._wake_writer.wait()
        except ConnectionClosed:
            return  # the reader reports the close

    def _enqueue(self, data: str, mid: int | None, *, ping: bool = False) -> None:
        self._outgoing.append((data, mid, ping))
        self._wake_writer.set()

    def _check_can_send(self) -> None:
        if self._state == "new":
            raise RuntimeError("not connected; call connect() first")
        if self._state == "closed":
            raise self._closed_error()

    # ---- internals: frames -----------------------------------------------------------------------

    def _receive(self, link: _Link, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
            if not isinstance(frame, dict):
                raise _BadFrame("a frame must be a JSON object")
            self._dispatch(link, frame)
        except (_BadFrame, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._violation(link, str(exc))
            return
        if self._frames.maxlen is not None and len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1
        self._frames.append(frame)
        self._notify()

    def _dispatch(self, link: _Link, frame: Frame) -> None:
        kind = frame.get("type")
        if self._debug:
            logger.debug("project %s: received %s", self.project_id, kind)
        match kind:
            case "welcome":
                self._on_welcome(link, frame)
            case "snapshot":
                self._on_snapshot(link, frame)
            case "change":
                self._on_change(link, frame)
            case "ack":
                self._on_ack(frame)
            case "error":
                self._on_error(frame)
            case "saved":
                seq = _get(frame, "seq", int)
                self.last_saved = Saved(seq, _get(frame, "at", str))
                self.saved_seq = max(self.saved_seq, seq)
            case "presence":
                self.editors = _get(frame, "editors", list)
                self._on_event(frame)
            case "event":
                _get(frame, "topic", str)
                self._on_event(frame)
            case "pong":
                self._on_pong(frame)
            case str():
                logger.debug("project %s: ignoring a frame of unknown type %s", self.project_id, kind)
            case _:
                raise _BadFrame("a frame needs a string type")

    def _on_welcome(self, link: _Link, frame: Frame) -> None:
        if link.welcome is not None:
            raise _BadFrame("a second welcome on one connection")
        if frame.get("protocol") != PROTOCOL_VERSION:
            raise _BadFrame(f"welcome.protocol: expected {PROTOCOL_VERSION}, got {frame.get('protocol')!r}")
        project_id = _get(frame, "project_id", str)
        if project_id != self.project_id:
            raise _BadFrame(f"welcome.project_id: expected {self.project_id}, got {project_id}")
        welcome = Welcome(
            project_id, _get(frame, "epoch", str), _get(frame, "seq", int), _get(frame, "session", str)
        )
        link.welcome = welcome
        self.session = welcome.session
        resume = link.resume
        # The server replays changes only for the current epoch and a seq it still has; else a snapshot comes.
        link.resumable = resume is not None and resume[0] == welcome.epoch and resume[1] <= welcome.seq
        if link.resumable and self.seq >= welcome.seq:
            self._sync_done(link, replace(welcome, resumed=True))

    def _on_snapshot(self, link: _Link, frame: Frame) -> None:
        if link.welcome is None:
            raise _BadFrame("snapshot before welcome")
        epoch = _get(frame, "epoch", str)
        seq = _get(frame, "seq", int)
        project = _get(frame, "project", dict)
        scenes = _get_rows(frame, "scenes")
        clips = _get_rows(frame, "clips")
        saved_seq = _get(frame, "saved_seq", int)
        if epoch != self.epoch:
            self.acked_seq = 0  # acks of another epoch say nothing about this one's seqs
        self.view.reset(project, scenes, clips)
        for table in SIDE_TABLES:
            rows = frame.get(table)
            self.view.sides[table] = {str(r["id"]): dict(r) for r in rows} if isinstance(rows, list) else {}
        self.epoch, self.seq, self.saved_seq = epoch, seq, saved_seq
        self._resyncs_in_a_row = 0
        if not link.synced.done():
            self._sync_done(link, replace(link.welcome, resumed=False))
        elif self.resend_on_reconnect and self._unacked:
            # A snapshot in mid-session replaces a backlog the server dropped, and the acks and errors
            # in it went too; sent again, each mid is answered again and applied at most once.
            mids = self.resend_unacked()
            logger.info("project %s: snapshot replaced the stream; resent mids %s", self.project_id, mids)

    def _on_change(self, link: _Link, frame: Frame) -> None:
        welcome = link.welcome
        if welcome is None:
            raise _BadFrame("change before welcome")
        syncing = not link.synced.done()
        if syncing and not link.resumable:
            raise _BadFrame("change before the snapshot")
        seq = _check_change(frame)
        if seq <= self.seq:
            if self._debug:
                logger.debug("project %s: change %d already applied", self.project_id, seq)
            return
        if seq != self.seq + 1:
            self._resync(link, use_resume=True, why=f"missed changes {self.seq + 1}..{seq - 1}")
            return
        if not self.view.apply(frame):
            self._resync(link, use_resume=False, why=f"change {seq} updates a row the view does not hold")
            return
        self.seq = seq
        self._resyncs_in_a_row = 0
        if syncing and seq >= welcome.seq:
            self._sync_done(link, replace(welcome, resumed=True))

    def _on_ack(self, frame: Frame) -> None:
        mid = _get(frame, "mid", int)
        seq = _get(frame, "seq", int)
        self.acked_seq = max(self.acked_seq, seq)
        pending = self._unacked.pop(mid, None)
        if pending is not None:
            self._answer(mid, pending, Ack(mid, seq))

    def _on_error(self, frame: Frame) -> None:
        mid = _get_optional_int(frame, "mid")
        error = EditorError(_get(frame, "code", str), _get(frame, "message", str), mid)
        if mid is not None:
            pending = self._unacked.pop(mid, None)
            if pending is not None:
                self._answer(mid, pending, error)
                return
        logger.warning("project %s: error from the server: %s", self.project_id, error)
        self.errors.append(error)

    def _on_event(self, frame: Frame) -> None:
        self._events.append(frame)
        if self.on_event is not None:
            try:
                self.on_event(frame)
            except Exception:
                logger.exception("project %s: the on_event callback failed", self.project_id)

    def _on_pong(self, frame: Frame) -> None:
        if "t" not in frame:
            raise _BadFrame("pong.t is missing")
        wait = self._pings.pop(_ping_key(frame["t"]), None)
        if wait is None:
            return
        now = asyncio.get_running_loop().time()
        for future, started in wait.waiters:
            if not future.done():
                future.set_result(Pong(frame["t"], now - started))

    # ---- internals: waiting ----------------------------------------------------------------------

    def _new_future(self) -> asyncio.Future[Ack]:
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        return future

    def _answer(self, mid: int, pending: _Pending, outcome: Ack | BaseException) -> None:
        if not pending.future.done():
            if isinstance(outcome, Ack):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)
        self._answered[mid] = pending.future
        if len(self._answered) > _KEPT_ANSWERS:
            self._answered.popitem(last=False)

    def _fail_waiters(self, error: ClientClosed) -> None:
        for pending in self._unacked.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        for wait in self._pings.values():
            for future, _ in wait.waiters:
                if not future.done():
                    future.set_exception(error)
        self._pings.clear()

    def _closed_error(self) -> ClientClosed:
        code = self.close_code if self.close_code is not None else _CLOSE_ABNORMAL
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
