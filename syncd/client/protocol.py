"""`ClientProtocol`: the editor side of the syncd protocol as a state machine without I/O.

Nothing here touches a socket, a clock or asyncio. The caller (`syncd.client.connection.EditorClient`
over ``websockets``, or a client in another language following the same rules) feeds it what
happens, then acts on what it returns:

- inputs: `ClientProtocol.connection_made`, `ClientProtocol.receive_frame` (or ``receive_text``),
  `ClientProtocol.connection_lost`, `ClientProtocol.close`, and the local calls (``patch``, ``insert``,
  ``delete``, ``reorder``, ``flush``, ``mutation``, ``ping``, ``resend_unacked``);
- outputs: `ClientProtocol.take_frames` (the frames to write, in order) and
  `ClientProtocol.take_events` (`syncd.client.events`), like ``SyncEngine.take_effects`` on the server.

The rules it follows are written once, in "Client rules" of ``docs/protocol.md``; the cases in
``clients/conformance`` pin them down step by step.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from syncd.client.events import (
    Acknowledged,
    ChangeApplied,
    ClientEvent,
    Disconnected,
    Joined,
    Noticed,
    PongReceived,
    PresenceChanged,
    Rejected,
    Resyncing,
    SavedUpTo,
    ServerError,
    Unanswered,
    ViewReplaced,
    Violation,
)
from syncd.client.frames import (
    BadServerFrame,
    check_change,
    encode,
    get,
    get_optional_int,
    get_rows,
    parse,
    ping_key,
)
from syncd.client.view import ChildTable, Frame, ProjectView
from syncd.core.backoff import Backoff
from syncd.core.schema import SIDE_TABLES, Table
from syncd.errors import SyncdError
from syncd.wire import (
    CLOSE_ABNORMAL,
    CLOSE_PROTOCOL_ERROR,
    FINAL_CLOSE_CODES,
    PROTOCOL_VERSION,
)

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "FINAL_CLOSE_CODES",
    "ClientProtocol",
    "FrameTooLarge",
    "Phase",
]

Phase: TypeAlias = Literal["idle", "hello", "syncing", "live", "closed"]
"""``idle``: no connection (none yet, or lost and a reconnect may follow); ``hello``: hello sent, no
welcome yet; ``syncing``: welcome received, the snapshot or the missed changes still coming; ``live``:
in sync, mutations flow; ``closed``: closed for good (by the caller, a final close code or a protocol
violation) until the caller connects again."""


MAX_SYNC_ATTEMPTS: Final = 3
"""Connections in a row whose opening stream did not line up before that is a protocol violation."""
MAX_RESYNCS_IN_A_ROW: Final = 3
"""Gap recoveries without a snapshot or an in-order change in between before that is a violation."""
RECONNECT_INITIAL: Final = 0.5
RECONNECT_MAX: Final = 30.0
MAX_FRAME_BYTES: Final = 1024 * 1024
"""The server's default ``gateway.max_frame_bytes``."""


class FrameTooLarge(SyncdError, ValueError):
    """A mutation's frame is over the size the server takes; it was not queued and used no mid.

    Sent, it would be refused (``too_large``), or, past four times the limit, close the connection with
    1009 at every resend, so the client refuses it itself.
    """

    def __init__(self, kind: object, size: int, limit: int) -> None:
        super().__init__(f"the {kind} frame is {size:,} bytes, over the limit of {limit:,} (max_frame_bytes)")
        self.size = size
        self.limit = limit


@dataclass(eq=False, slots=True)
class _Unacked:
    """A mutation without an answer; ``sent`` once it went out on a connection."""

    frame: Frame
    sent: bool = False


class ClientProtocol:
    """One editor's state for one project: the view, the stream position, mids and unacked mutations.

    Args:
        project_id: the project to open.
        client_id: this editor's id (a UUID string), the same across reconnects.
        token: the access token sent in ``hello`` (None: anonymous); may be replaced before a reconnect.
        resume: whether ``hello`` resumes from the last applied seq; without it every connection and
            every gap starts from a snapshot.
        resend_unacked: whether mutations sent on a lost connection are sent again (same mids) once
            the next one is in sync; without it they are reported `Unanswered` and dropped.
        first_mid: the mid of the first mutation.
        jitter: returns a number in ``[0, 1)`` for the reconnect backoff (``random.random``).
        reconnect_initial: seconds before the first reconnect after a lost connection (before jitter).
        reconnect_max: the cap of the reconnect delay.
        max_frame_bytes: the largest mutation frame to send, in UTF-8 bytes: the server's
            ``gateway.max_frame_bytes``.
    """

    def __init__(
        self,
        project_id: str,
        client_id: str,
        *,
        token: str | None = None,
        resume: bool = True,
        resend_unacked: bool = True,
        first_mid: int = 1,
        jitter: Callable[[], float] = random.random,
        reconnect_initial: float = RECONNECT_INITIAL,
        reconnect_max: float = RECONNECT_MAX,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.project_id = project_id
        self.max_frame_bytes = max_frame_bytes
        self.client_id = client_id
        self.token = token
        self.resume = resume
        self.resend_on_reconnect = resend_unacked
        self.view = ProjectView()
        self.epoch: str | None = None
        """Epoch of the stream the view follows; None before the first snapshot."""
        self.seq = 0
        """Seq of the last change applied to the view."""
        self.saved_seq = 0
        """Highest seq the server reported saved."""
        self.last_saved: SavedUpTo | None = None
        self.acked_seq = 0
        """Highest seq of an ack received in the current epoch."""
        self.session: str | None = None
        self.editors: list[Frame] = []
        self.editor_count = 0
        """How many editors the last ``presence`` counted (``editors`` may list only the first)."""
        self.resyncs = 0
        """How many times a gap or a diverged view made the client leave a live connection."""
        self.phase: Phase = "idle"
        self._next_mid = first_mid
        self._unacked: dict[int, _Unacked] = {}
        self._pings: dict[str, Frame] = {}
        self._outbox: list[tuple[Frame, int | None]] = []
        self._events: list[ClientEvent] = []
        self._backoff = Backoff(reconnect_initial, reconnect_max, jitter)
        self._sent_resume: tuple[str, int] | None = None
        self._welcome: Joined | None = None
        self._resumable = False
        self._snapshot_needed = False
        self._sync_attempts = 0
        self._resyncs_in_a_row = 0

    # ---- outputs ---------------------------------------------------------------------------------

    def take_frames(self) -> list[Frame]:
        """Return the frames to write, in order, and forget them."""
        frames = [frame for frame, _ in self._outbox]
        self._outbox.clear()
        return frames

    def take_events(self) -> list[ClientEvent]:
        """Return what happened since the last call, in order, and forget it."""
        events, self._events = self._events, []
        return events

    @property
    def next_mid(self) -> int:
        """The mid the next mutation will get."""
        return self._next_mid

    @property
    def unacked(self) -> list[int]:
        """Mids of the mutations that have no answer yet, in mid order."""
        return list(self._unacked)

    def resume_point(self) -> tuple[str, int] | None:
        """The ``(epoch, seq)`` the next ``hello`` resumes from, or None when it asks for a snapshot."""
        if self.resume and self.epoch is not None and not self._snapshot_needed:
            return (self.epoch, self.seq)
        return None

    # ---- the connection --------------------------------------------------------------------------

    def connection_made(self) -> None:
        """A new connection is open: queue its ``hello``.

        Raises:
            RuntimeError: a connection is already in use (phase ``hello``, ``syncing`` or ``live``).
        """
        if self.phase not in ("idle", "closed"):
            raise RuntimeError(f"connection_made() while {self.phase}; the old connection is still in use")
        resume = self.resume_point()
        self._sent_resume, self._welcome, self._resumable = resume, None, False
        self.phase = "hello"
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "project_id": self.project_id,
            "client_id": self.client_id,
            "token": self.token,
            "resume": {"epoch": resume[0], "seq": resume[1]} if resume is not None else None,
        }
        self._outbox.append((hello, None))

    def connection_lost(self, code: int, reason: str = "", now: float = 0.0) -> None:
        """The connection ended without the client leaving it; reports `Disconnected`.

        A connection the client already left (after `Resyncing`, `Violation` or `close`) reports
        nothing: call this only for the connection in use.

        Args:
            code: the close code (1006 when the connection dropped without one).
            reason: the close reason.
            now: the caller's clock in seconds, for ``Disconnected.retry_at``.
        """
        if self.phase in ("idle", "closed"):
            return
        self._leave()
        self._pings.clear()
        self._sync_attempts = 0
        final = code in FINAL_CLOSE_CODES
        self.phase = "closed" if final else "idle"
        retry_at = None if final else now + self._backoff.next_delay()
        self._events.append(Disconnected(code, reason, final, retry_at))

    def connection_failed(self, reason: str, now: float) -> None:
        """A connection could not be opened; reports `Disconnected` (1006) with the next retry time."""
        if self.phase == "closed":
            return
        self._events.append(Disconnected(CLOSE_ABNORMAL, reason, False, now + self._backoff.next_delay()))

    def disconnect(self) -> None:
        """The caller leaves the connection on purpose, to open another: no event, everything is kept."""
        if self.phase in ("idle", "closed"):
            return
        self._leave()
        self._sync_attempts = 0
        self.phase = "idle"

    def close(self) -> None:
        """The caller closes the client: leave the connection, forget pings; unacked mutations stay."""
        self._leave()
        self._pings.clear()
        self._sync_attempts = 0
        self.phase = "closed"

    # ---- local calls -----------------------------------------------------------------------------

    def mutation(self, frame: Mapping[str, Any]) -> Frame:
        """Give ``frame`` the next mid and keep it until it is answered; return the frame as sent.

        It is queued for `take_frames` at once when live, else when the next connection is in sync.
        Nothing in the frame is checked but that JSON can carry it and that it is not too large.

        Raises:
            FrameTooLarge: the frame is over ``max_frame_bytes`` (no mid is used).
            TypeError, ValueError: the frame cannot be written as JSON (no mid is used).
        """
        mid = self._next_mid
        body: Frame = {"type": frame.get("type"), "mid": mid}
        body.update((key, value) for key, value in frame.items() if key not in ("type", "mid"))
        size = len(encode(body))  # ASCII: `encode` escapes everything else
        if size > self.max_frame_bytes:
            raise FrameTooLarge(body["type"], size, self.max_frame_bytes)
        self._next_mid = mid + 1
        entry = self._unacked[mid] = _Unacked(body)
        if self.phase == "live":
            entry.sent = True
            self._outbox.append((body, mid))
        return body

    def patch(self, table: Table, id: str, set: Mapping[str, Any]) -> Frame:
        """A ``patch`` of one row's fields; see `mutation`."""
        return self.mutation({"type": "patch", "table": table, "id": id, "set": dict(set)})

    def insert(self, table: ChildTable, row: Mapping[str, Any]) -> Frame:
        """An ``insert`` of a row (holding its ``id``); see `mutation`."""
        return self.mutation({"type": "insert", "table": table, "row": dict(row)})

    def delete(self, table: ChildTable, id: str) -> Frame:
        """A ``delete`` of a row; see `mutation`."""
        return self.mutation({"type": "delete", "table": table, "id": id})

    def reorder(self, table: ChildTable, ids: Iterable[str]) -> Frame:
        """A ``reorder`` putting ``ids`` first, in this order; see `mutation`."""
        return self.mutation({"type": "reorder", "table": table, "ids": list(ids)})

    def flush(self) -> Frame:
        """A ``flush`` (save now); see `mutation`."""
        return self.mutation({"type": "flush"})

    def resend_unacked(self) -> list[int]:
        """Queue every unanswered mutation again, in mid order, unless already queued; return the mids.

        Only while live: a connection that is not in sync yet sends them all when it is.
        """
        if self.phase != "live":
            return []
        queued = {mid for _, mid in self._outbox if mid is not None}
        mids = [mid for mid in self._unacked if mid not in queued]
        for mid in mids:
            entry = self._unacked[mid]
            entry.sent = True
            self._outbox.append((entry.frame, mid))
        return mids

    def ping(self, t: Any) -> None:
        """Queue ``ping {t}`` unless one with an equal ``t`` waits; `PongReceived` reports its answer.

        Raises:
            TypeError, ValueError: ``t`` cannot be written as JSON.
        """
        key = ping_key(t)
        if key in self._pings:
            return
        frame: Frame = {"type": "ping", "t": t}
        encode(frame)
        self._pings[key] = frame
        if self.phase == "live":
            self._outbox.append((frame, None))

    # ---- server frames ---------------------------------------------------------------------------

    def receive_text(self, message: str | bytes) -> Frame | None:
        """Handle one WebSocket message; return it parsed, or None if it is no JSON object (a `Violation`)."""
        if self.phase in ("idle", "closed"):
            return None
        try:
            frame = parse(message)
        except BadServerFrame as exc:
            self._violate(str(exc))
            return None
        self.receive_frame(frame)
        return frame

    def receive_frame(self, frame: Frame) -> None:
        """Handle one parsed server frame. Frames arriving after the client left a connection are ignored."""
        if self.phase in ("idle", "closed"):
            return
        try:
            self._dispatch(frame)
        except BadServerFrame as exc:
            self._violate(str(exc))

    def _dispatch(self, frame: Frame) -> None:
        match frame.get("type"):
            case "welcome":
                self._on_welcome(frame)
            case "snapshot":
                self._on_snapshot(frame)
            case "change":
                self._on_change(frame)
            case "ack":
                self._on_ack(frame)
            case "error":
                self._on_error(frame)
            case "saved":
                saved = SavedUpTo(get(frame, "seq", int), get(frame, "at", str))
                self.last_saved = saved
                self.saved_seq = max(self.saved_seq, saved.seq)
                self._events.append(saved)
            case "presence":
                editors, count = get(frame, "editors", list), get_optional_int(frame, "count")
                # A presence lists at most the server's limit; ``count`` (newer servers) says how many.
                self.editors, self.editor_count = editors, len(editors) if count is None else count
                self._events.append(PresenceChanged(tuple(editors), self.editor_count))
            case "event":
                self._events.append(Noticed(get(frame, "topic", str), frame.get("data")))
            case "pong":
                self._on_pong(frame)
            case str():
                pass  # a frame type of a later protocol version: nothing to do
            case _:
                raise BadServerFrame("a frame needs a string type")

    def _on_welcome(self, frame: Frame) -> None:
        if self._welcome is not None:
            raise BadServerFrame("a second welcome on one connection")
        if frame.get("protocol") != PROTOCOL_VERSION:
            raise BadServerFrame(
                f"welcome.protocol: expected {PROTOCOL_VERSION}, got {frame.get('protocol')!r}"
            )
        project_id = get(frame, "project_id", str)
        if project_id != self.project_id:
            raise BadServerFrame(f"welcome.project_id: expected {self.project_id}, got {project_id}")
        welcome = Joined(
            project_id, get(frame, "epoch", str), get(frame, "seq", int), get(frame, "session", str)
        )
        self._welcome, self.session, self.phase = welcome, welcome.session, "syncing"
        resume = self._sent_resume
        # The server replays changes only for the current epoch and a seq it still has; else a snapshot comes.
        self._resumable = resume is not None and resume[0] == welcome.epoch and resume[1] <= welcome.seq
        if self._resumable and self.seq >= welcome.seq:
            self._join(resumed=True)

    def _on_snapshot(self, frame: Frame) -> None:
        if self._welcome is None:
            raise BadServerFrame("snapshot before welcome")
        epoch, seq = get(frame, "epoch", str), get(frame, "seq", int)
        project = get(frame, "project", dict)
        scenes, clips = get_rows(frame, "scenes"), get_rows(frame, "clips")
        saved_seq = get(frame, "saved_seq", int)
        if epoch != self.epoch:
            self.acked_seq = 0  # acks of another epoch say nothing about this one's seqs
        self.view.reset(project, scenes, clips, {t: get_rows(frame, t) for t in SIDE_TABLES if t in frame})
        self.epoch, self.seq, self.saved_seq = epoch, seq, saved_seq
        self._resyncs_in_a_row = 0
        self._snapshot_needed = False
        self._events.append(ViewReplaced(epoch, seq))
        if self.phase == "syncing":
            self._join(resumed=False)
        elif self.resend_on_reconnect:
            # A snapshot in mid-session replaces a backlog the server dropped, and the acks and errors
            # in it went too; sent again, each mid is answered again and applied at most once.
            self.resend_unacked()

    def _on_change(self, frame: Frame) -> None:
        welcome = self._welcome
        if welcome is None:
            raise BadServerFrame("change before welcome")
        syncing = self.phase == "syncing"
        if syncing and not self._resumable:
            raise BadServerFrame("change before the snapshot")
        seq = check_change(frame)
        if seq <= self.seq:
            return  # a repeat of a change already applied
        if seq != self.seq + 1:
            self._resync(f"missed changes {self.seq + 1}..{seq - 1}", resume=True)
            return
        if not self.view.apply(frame):
            self._resync(f"change {seq} updates a row the view does not hold", resume=False)
            return
        self.seq = seq
        self._resyncs_in_a_row = 0
        self._events.append(ChangeApplied(seq, frame["table"], frame["op"], frame["id"]))
        if syncing and seq >= welcome.seq:
            self._join(resumed=True)

    def _on_ack(self, frame: Frame) -> None:
        mid, seq = get(frame, "mid", int), get(frame, "seq", int)
        self.acked_seq = max(self.acked_seq, seq)
        if self._unacked.pop(mid, None) is not None:
            self._events.append(Acknowledged(mid, seq))

    def _on_error(self, frame: Frame) -> None:
        mid = get_optional_int(frame, "mid")
        code, message = get(frame, "code", str), get(frame, "message", str)
        if mid is not None and self._unacked.pop(mid, None) is not None:
            self._events.append(Rejected(mid, code, message))
        else:
            self._events.append(ServerError(mid, code, message))

    def _on_pong(self, frame: Frame) -> None:
        if "t" not in frame:
            raise BadServerFrame("pong.t is missing")
        if self._pings.pop(ping_key(frame["t"]), None) is not None:
            self._events.append(PongReceived(frame["t"]))

    # ---- transitions -----------------------------------------------------------------------------

    def _join(self, *, resumed: bool) -> None:
        """The view is in sync: go live, then send the unanswered mutations (mid order) and pings."""
        assert self._welcome is not None
        self.phase = "live"
        self._sync_attempts = 0
        self._backoff.reset()
        self._events.append(dataclasses.replace(self._welcome, resumed=resumed))
        for mid, entry in list(self._unacked.items()):
            if entry.sent and not self.resend_on_reconnect:
                del self._unacked[mid]
                self._events.append(Unanswered(mid))
                continue
            entry.sent = True
            self._outbox.append((entry.frame, mid))
        self._outbox.extend((frame, None) for frame in self._pings.values())

    def _resync(self, why: str, *, resume: bool) -> None:
        """Leave the connection to recover missed or diverged state on a new one."""
        joined = self.phase == "live"
        self._leave()
        self.phase = "idle"
        if not joined:
            self._sync_attempts += 1
            if self._sync_attempts >= MAX_SYNC_ATTEMPTS:
                self._violate("the change stream never lined up with the view")
                return
            self._snapshot_needed = True  # a resumed stream that does not line up: start over
        else:
            self._resyncs_in_a_row += 1
            if self._resyncs_in_a_row > MAX_RESYNCS_IN_A_ROW:
                self._violate(f"{why}, again after {MAX_RESYNCS_IN_A_ROW} reconnects")
                return
            self.resyncs += 1
            self._snapshot_needed = self._snapshot_needed or not resume
        self._events.append(Resyncing(why, self.resume_point() is not None))

    def _violate(self, reason: str) -> None:
        self._leave()
        self._pings.clear()
        self._sync_attempts = 0
        self.phase = "closed"
        self._events.append(Violation(reason))

    def _leave(self) -> None:
        """Stop using the connection: mutations queued but not taken were never sent."""
        for _, mid in self._outbox:
            entry = self._unacked.get(mid) if mid is not None else None
            if entry is not None:
                entry.sent = False
        self._outbox.clear()
