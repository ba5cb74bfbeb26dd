"""The engine's outputs. `SyncEngine.take_effects` returns them in the order the daemon must act.

Ordering contract for the daemon: an ``Ack`` may be sent only once every ``Append`` that came before
it is durable. Every other effect may be acted on at once, in order.
"""

from dataclasses import dataclass
from typing import TypeAlias

from syncd.core.batch import WriteBatch
from syncd.core.ids import ClientId, ConnId, Epoch, MutationId, ProjectId, RowId, UserId
from syncd.core.journal import JournalEntry
from syncd.core.schema import StreamTable
from syncd.core.values import Row
from syncd.wire import ChangeOp, ErrorCode, Origin


@dataclass(frozen=True, slots=True)
class LoadProject:
    """Read every synced row of the project and answer with ``receive_loaded``; retry on failure."""

    project_id: ProjectId


@dataclass(frozen=True, slots=True)
class RequestReread:
    """Read every synced row of the project again; answer with ``receive_reread(project_id, token, ...)``."""

    project_id: ProjectId
    token: int


@dataclass(frozen=True, slots=True)
class Append:
    """Write this entry to the durable journal."""

    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class RemoveJournal:
    """Delete these mutations' journal entries: the database holds them (or they were dropped)."""

    project_id: ProjectId
    mutation_ids: tuple[MutationId, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """Tell the connection its mutation is durable, once every earlier ``Append`` is on disk."""

    conn: ConnId
    mid: int
    seq: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """The ``welcome`` frame to a connection whose project is live."""

    conn: ConnId
    project_id: ProjectId
    epoch: Epoch
    seq: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole live view of a project at ``seq``.

    Attributes:
        conn: the connection to send it to; None means every editor of the project.
        project_id: the project.
        epoch: the project's current epoch.
        seq: the seq this view is at.
        project: the ``projects`` row.
        scenes: ordered by ``scene_index``, ties by id.
        clips: ordered by ``order_index``, ties by id.
        saved_seq: every editor change up to this seq is in the database.
    """

    conn: ConnId | None
    project_id: ProjectId
    epoch: Epoch
    seq: int
    project: Row
    scenes: tuple[Row, ...]
    clips: tuple[Row, ...]
    saved_seq: int


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the live view, for every editor of the project (its author included).

    Attributes:
        project_id: the project.
        seq: gapless within the epoch.
        table: the row's table.
        op: insert, update or delete.
        id: the row.
        row: the whole visible row (insert only).
        set: the fields whose values changed, with their new values (update only).
        origin: ``editor`` for a mutation, ``db`` for anything the database reported.
        client_id: the author of an editor change.
        mid: the author's mutation id of an editor change.
    """

    project_id: ProjectId
    seq: int
    table: StreamTable
    op: ChangeOp
    id: RowId
    row: Row | None
    set: Row | None
    origin: Origin
    client_id: ClientId | None
    mid: int | None


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The changes a resuming connection missed, in order (possibly none), instead of a snapshot."""

    conn: ConnId
    project_id: ProjectId
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Saved:
    """Every editor change of the project up to ``seq`` is in the database (the gateway adds ``at``)."""

    project_id: ProjectId
    seq: int


@dataclass(frozen=True, slots=True)
class Error:
    """An ``error`` frame.

    Attributes:
        project_id: the project concerned.
        conn: the connection to tell; None means every editor of the project.
        mid: the mutation it is about, if any.
        code: a protocol error code.
        message: safe to show to the editor.
    """

    project_id: ProjectId
    conn: ConnId | None
    mid: int | None
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class PresenceEditor:
    """One editor in a ``presence`` frame."""

    client_id: ClientId
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Presence:
    """Who has the project open, in the order they arrived.

    Attributes:
        project_id: the project.
        editors: the editors, or the first of them when there are more than a presence lists.
        count: how many editors there are when ``editors`` lists only the first (None: it lists all).
        conn: the connection to tell; None means every editor of the project.
    """

    project_id: ProjectId
    editors: tuple[PresenceEditor, ...]
    count: int | None = None
    conn: ConnId | None = None


@dataclass(frozen=True, slots=True)
class ProjectNotFound:
    """The project does not exist (its load found no row, or it was deleted).

    The engine has forgotten the project and its connections: the gateway closes ``conns`` with 4404.
    ``dropped`` are journaled mutations that can never be saved (the daemon logs them as lost); a
    ``RemoveJournal`` for them follows.
    """

    project_id: ProjectId
    conns: tuple[ConnId, ...]
    dropped: tuple[MutationId, ...]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close a connection with this WebSocket close code; the engine has already let go of it.

    The daemon still calls ``detach`` when the connection is gone (a no-op for the engine).
    """

    conn: ConnId
    code: int
    reason: str


Effect: TypeAlias = (
    LoadProject
    | RequestReread
    | Append
    | RemoveJournal
    | Ack
    | Welcome
    | Snapshot
    | Change
    | CatchUp
    | Saved
    | Error
    | Presence
    | WriteBatch
    | ProjectNotFound
    | Disconnect
)
"""Everything the engine asks the daemon to do."""

__all__ = [
    "Ack",
    "Append",
    "CatchUp",
    "Change",
    "Disconnect",
    "Effect",
    "Error",
    "LoadProject",
    "Presence",
    "PresenceEditor",
    "ProjectNotFound",
    "RemoveJournal",
    "RequestReread",
    "Saved",
    "Snapshot",
    "Welcome",
    "WriteBatch",
]
