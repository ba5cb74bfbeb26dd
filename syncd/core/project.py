"""ProjectState: the live state of one open project.

The live view of a row is computed from three layers:

- the server row: the last row the database reported (load, re-read, change feed, write result);
- the in-flight layer: the edits of the write batch the database is applying now;
- the pending layer: the edits made since that batch was sent.

Editors see ``pending(in_flight(server))`` without ``version``. When a layer changes, the row is
recomputed and editors get a ``Change`` with the fields whose visible value changed, if any. Every
``Change`` takes the next ``seq`` and goes into the history.

A write that succeeds moves its layer into the server rows (the database returns each touched row
whole). A write that fails merges its layer back under the pending one, where newer edits win per
field. A remote delete drops the pending edits of its row and tells their authors.
"""

from dataclasses import dataclass, field
from math import inf
from typing import assert_never

from syncd.core.backoff import Backoff
from syncd.core.batch import WriteBatch
from syncd.core.dedupe import MutationLog
from syncd.core.edits import RowEdit, compose, order_ops
from syncd.core.effects import (
    CatchUp,
    Change,
    Effect,
    Error,
    RemoveJournal,
    RequestReread,
    Saved,
    Snapshot,
    Welcome,
)
from syncd.core.history import History
from syncd.core.ids import ClientId, ConnId, Epoch, MutationId, ProjectId, RowId, UserId
from syncd.core.inputs import (
    Delete,
    Insert,
    Patch,
    ProjectRows,
    RemoteChange,
    RemoteDelete,
    RemoteUpsert,
    SideChange,
    WriteOk,
)
from syncd.core.journal import JournalEntry, Reordered
from syncd.core.reconcile import Tombstone, accept_delete, accept_upsert, accept_written, diff
from syncd.core.schema import ORDER_FIELD, Table, table_named
from syncd.core.validate import order_key
from syncd.core.values import JsonValue, Row, row_version, visible
from syncd.wire import ChangeOp, Origin

Key = tuple[Table, RowId]
"""A row of the project: ``(table, id)``."""

MAX_TOMBSTONES = 10_000
"""How many deleted rows a project remembers (oldest forgotten first)."""

MAX_REREADS = 16
"""How many unanswered re-reads a project waits for; an older one answered later is ignored."""


@dataclass(slots=True)
class Session:
    """One editor connection to a project.

    Attributes:
        conn: the gateway's connection id.
        client_id: the editor's client id.
        user_id: the editor's user.
        project_id: the project it opened.
        resume: ``(epoch, seq)`` it last saw, if it is reconnecting.
    """

    conn: ConnId
    client_id: ClientId
    user_id: UserId
    project_id: ProjectId
    resume: tuple[Epoch, int] | None


@dataclass(slots=True)
class InFlight:
    """The write batch the database is applying.

    Attributes:
        batch_id: the batch's id.
        edits: its layer of edits.
        mutation_ids: every mutation it covers.
        first_seq: seq of its first editor change, if any.
        sent: the project's event counter when it was sent.
    """

    batch_id: int
    edits: dict[Key, RowEdit]
    mutation_ids: tuple[MutationId, ...]
    first_seq: int | None
    sent: int


@dataclass(slots=True)
class ProjectState:
    """The state of one open project; the engine drives it and owns its effect list.

    Attributes:
        project_id: the project.
        epoch: this lifetime of its change stream.
        out: where effects go (the engine's queue).
        history: its recent changes; ``history.seq`` is the current seq.
        backoff: retry delays of its write batches.
        owners: the user each client id is bound to while the project is open (the first to use it).
        presence_sent: when the last ``Presence`` to every editor went out (-inf before the first).
    """

    project_id: ProjectId
    epoch: Epoch
    out: list[Effect]
    history: History
    backoff: Backoff
    loaded: bool = False
    server: dict[Key, Row] = field(default_factory=dict)
    born: dict[Key, int] = field(default_factory=dict)
    tombstones: dict[Key, Tombstone] = field(default_factory=dict)
    pending: dict[Key, RowEdit] = field(default_factory=dict)
    pending_mids: list[MutationId] = field(default_factory=list)
    pending_first_seq: int | None = None
    inflight: InFlight | None = None
    view: dict[Key, dict[str, JsonValue]] = field(default_factory=dict)
    mutations: MutationLog = field(default_factory=MutationLog)
    owners: dict[ClientId, UserId] = field(default_factory=dict)
    clock: int = 0
    saved_emitted: int = 0
    editors: dict[ConnId, Session] = field(default_factory=dict)
    waiting: dict[ConnId, Session] = field(default_factory=dict)
    restored: list[JournalEntry] = field(default_factory=list)
    early_changes: list[RemoteChange] = field(default_factory=list)
    rereads: set[int] = field(default_factory=set)
    reread_on_load: bool = False
    flush_wanted: bool = False
    presence_sent: float = -inf

    # -- reading ------------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The seq of the latest change."""
        return self.history.seq

    def has_pending(self) -> bool:
        """True when mutations wait for a batch (not counting the one in flight)."""
        return bool(self.pending_mids)

    def unsaved(self) -> tuple[MutationId, ...]:
        """Every mutation not yet in the database: restored, in flight and pending."""
        inflight = () if self.inflight is None else self.inflight.mutation_ids
        return (*(entry.mutation_id for entry in self.restored), *inflight, *self.pending_mids)

    def saved_seq(self) -> int:
        """The highest seq such that every editor change up to it is in the database."""
        firsts = [self.pending_first_seq] if self.pending_first_seq is not None else []
        if self.inflight is not None and self.inflight.first_seq is not None:
            firsts.append(self.inflight.first_seq)
        return min(firsts) - 1 if firsts else self.seq

    def snapshot(self, conn: ConnId | None) -> Snapshot:
        """Return the whole live view, rows ordered by their index."""
        scenes: list[tuple[tuple[float, RowId], dict[str, JsonValue]]] = []
        clips: list[tuple[tuple[float, RowId], dict[str, JsonValue]]] = []
        for (table, row_id), row in self.view.items():
            if table == "scenes":
                scenes.append((order_key(row_id, row, ORDER_FIELD["scenes"]), dict(row)))
            elif table == "clips":
                clips.append((order_key(row_id, row, ORDER_FIELD["clips"]), dict(row)))
        scenes.sort(key=lambda item: item[0])
        clips.sort(key=lambda item: item[0])
        return Snapshot(
            conn,
            self.project_id,
            self.epoch,
            self.seq,
            dict(self.view[("projects", RowId(self.project_id))]),
            tuple(row for _, row in scenes),
            tuple(row for _, row in clips),
            self.saved_seq(),
        )

    # -- editors ------------------------------------------------------------------------------------

    def welcome(self, session: Session) -> None:
        """Let a connection in: welcome, then its missed changes or a snapshot (the engine adds presence)."""
        self.out.append(Welcome(session.conn, self.project_id, self.epoch, self.seq))
        missed = None
        if session.resume is not None and session.resume[0] == self.epoch:
            missed = self.history.since(session.resume[1])
        if missed is None:
            self.out.append(self.snapshot(session.conn))
        else:
            self.out.append(CatchUp(session.conn, self.project_id, missed))
        self.editors[session.conn] = session

    def _conflict(self, key: Key, authors: set[MutationId]) -> None:
        """Tell the authors of dropped edits of a deleted row, once per client (its latest mid)."""
        latest: dict[ClientId, int] = {}
        for client_id, mid in authors:
            latest[client_id] = max(mid, latest.get(client_id, mid))
        table, row_id = key
        message = f"row {row_id!r} of table {table!r} was deleted; your pending edits to it were dropped"
        for client_id, mid in sorted(latest.items()):
            for session in self.editors.values():
                if session.client_id == client_id:
                    self.out.append(Error(self.project_id, session.conn, mid, "conflict", message))

    # -- the change stream --------------------------------------------------------------------------

    def _change(
        self,
        key: Key,
        op: ChangeOp,
        row: Row | None,
        values: Row | None,
        origin: Origin,
        by: MutationId | None,
    ) -> int:
        seq = self.history.seq + 1
        client_id, mid = (None, None) if by is None else by
        change = Change(self.project_id, seq, key[0], op, key[1], row, values, origin, client_id, mid)
        self.history.append(change)
        self.out.append(change)
        if origin == "editor" and self.pending_first_seq is None:
            self.pending_first_seq = seq
        return seq

    def side_change(self, change: SideChange) -> None:
        """Pass on a change to a side table's row: the next seq, origin ``db``, nothing kept in the view."""
        seq = self.history.seq + 1
        item = Change(
            self.project_id, seq, change.table, change.op, change.id, change.row, change.set, "db", None, None
        )
        self.history.append(item)
        self.out.append(item)

    def _compute(self, key: Key) -> dict[str, JsonValue] | None:
        server = self.server.get(key)
        row = None if server is None else visible(server)
        if self.inflight is not None:
            edit = self.inflight.edits.get(key)
            if edit is not None:
                row = edit.apply(row)
        pending = self.pending.get(key)
        return row if pending is None else pending.apply(row)

    def refresh(self, key: Key, origin: Origin, by: MutationId | None = None) -> int | None:
        """Recompute a row from its layers; tell editors what visibly changed. Returns the change's seq."""
        old = self.view.get(key)
        new = self._compute(key)
        if new is None:
            if old is None:
                return None
            del self.view[key]
            return self._change(key, "delete", None, None, origin, by)
        self.view[key] = new
        if old is None:
            return self._change(key, "insert", dict(new), None, origin, by)
        changed = diff(old, new)
        return self._change(key, "update", None, changed, origin, by) if changed else None

    # -- server rows --------------------------------------------------------------------------------

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def _set_server(self, key: Key, row: Row) -> None:
        if key not in self.server:
            self.born[key] = self._tick()
        self.server[key] = row

    def _bury(self, key: Key, version: int) -> None:
        """Remember that a row was deleted (at this version)."""
        self.tombstones.pop(key, None)
        self.tombstones[key] = Tombstone(version, self._tick())
        if len(self.tombstones) > MAX_TOMBSTONES:
            del self.tombstones[next(iter(self.tombstones))]

    def _remove_server(self, key: Key, version: int | None) -> None:
        known = self.server.pop(key)
        del self.born[key]
        self._bury(key, row_version(known) if version is None else version)

    def _drop_pending(self, key: Key, extra_authors: set[MutationId]) -> None:
        """Remote delete wins: forget the row's pending edits and tell their authors."""
        edit = self.pending.pop(key, None)
        authors = extra_authors if edit is None else extra_authors | edit.authors()
        if authors:
            self._conflict(key, authors)

    def _belongs(self, table: Table, row: Row) -> bool:
        if table == "projects":
            return row.get("id") == self.project_id
        return row.get("project_id") == self.project_id

    def load(self, rows: ProjectRows) -> bool:
        """Take the initial read, then the changes and journal entries that waited for it.

        Returns True when one of the waiting changes deleted the project.
        """
        self.loaded = True
        for client_id, mid in rows.applied.items():
            self.mutations.accept(client_id, mid)
        for table, row in rows.rows():
            key = (table, RowId(str(row["id"])))
            self._set_server(key, row)
            self.view[key] = visible(row)
        early, self.early_changes = self.early_changes, []
        for change in early:
            if self.receive_remote(change):
                return True
        restored, self.restored = self.restored, []
        for entry in restored:
            self.replay(entry)
        return False

    def receive_remote(self, change: RemoteChange) -> bool:
        """Apply a change from the change feed. Returns True when it deleted the project."""
        match change:
            case RemoteUpsert(table, row):
                key = (table, RowId(str(row["id"])))
                if not self._belongs(table, row):
                    # A row that moved to another project has left this one.
                    return key in self.server and self._remote_delete(key, None)
                if accept_upsert(self.server.get(key), self.tombstones.get(key), row_version(row)):
                    self._set_server(key, row)
                    self.refresh(key, "db")
                return False
            case RemoteDelete(table, row_id, version):
                key = (table, row_id)
                known = self.server.get(key)
                if known is None:
                    if version is not None:
                        tomb = self.tombstones.get(key)
                        self._bury(key, version if tomb is None else max(version, tomb.version))
                    return False
                if not accept_delete(known, self.tombstones.get(key), version):
                    return False
                return self._remote_delete(key, version)
            case _:
                assert_never(change)

    def _remote_delete(self, key: Key, version: int | None) -> bool:
        self._remove_server(key, version)
        if key[0] == "projects":
            return True
        dropped: set[MutationId] = set()
        edit = None if self.inflight is None else self.inflight.edits.get(key)
        if self.inflight is not None and edit is not None and edit.delete is None:
            # The row existed when the batch was cut, so the batch cannot bring it back: its insert
            # was applied before (the database skips it) and its field writes will find no row.
            dropped = {by for _, by in edit.fields.values()}
            self.inflight.edits[key] = RowEdit(maybe_exists=edit.maybe_exists)
        self._drop_pending(key, dropped)
        self.refresh(key, "db")
        return False

    def request_reread(self) -> None:
        """Ask for a full read; rows learned after this moment are safe from it."""
        token = self._tick()
        self.rereads.add(token)
        if len(self.rereads) > MAX_REREADS:
            # The daemon gave up on the oldest one (its read failed); forget it.
            self.rereads.discard(min(self.rereads))
        self.out.append(RequestReread(self.project_id, token))

    def receive_reread(self, token: int, rows: ProjectRows) -> bool:
        """Reconcile a full read with what is known. Returns True when the project no longer exists.

        Rows the read has and that are newer than known act as remote upserts. Rows known but absent
        from the read were deleted, unless the engine learned of them after asking for the read (the
        read may have run before they existed). Pending inserts are not server rows, so the read never
        touches them.
        """
        if token not in self.rereads:
            return False
        self.rereads.discard(token)
        if rows.project is None:
            return True
        present: set[Key] = set()
        for table, row in rows.rows():
            key = (table, RowId(str(row["id"])))
            present.add(key)
            known = self.server.get(key)
            if known is None:
                tomb = self.tombstones.get(key)
                if tomb is not None and tomb.learned > token:
                    continue
            elif row_version(row) <= row_version(known):
                continue
            self._set_server(key, row)
            self.refresh(key, "db")
        for key in [key for key in self.server if key not in present and self.born[key] <= token]:
            self._remote_delete(key, None)
        return False

    # -- editor mutations (validated by the engine) ---------------------------------------------------

    def _edit(self, key: Key) -> RowEdit:
        edit = self.pending.get(key)
        if edit is None:
            edit = self.pending[key] = RowEdit()
        return edit

    def _exists_below(self, key: Key) -> bool:
        """True when the row exists in the server state as the in-flight batch leaves it."""
        if self.inflight is not None:
            edit = self.inflight.edits.get(key)
            if edit is not None and edit.insert is not None:
                return True
            if edit is not None and edit.delete is not None:
                return False
        return key in self.server

    def apply_patch(self, key: Key, values: Row, by: MutationId) -> int:
        """Apply a validated patch; returns its change's seq."""
        self._edit(key).set_fields(values, by)
        self.view[key].update(values)
        self.pending_mids.append(by)
        return self._change(key, "update", None, values, "editor", by)

    def apply_insert(self, key: Key, row: Row, by: MutationId) -> int:
        """Apply a validated insert (``row`` holds ``project_id``); returns its change's seq."""
        self._edit(key).set_insert(row, by)
        self.view[key] = dict(row)
        self.pending_mids.append(by)
        return self._change(key, "insert", row, None, "editor", by)

    def apply_delete(self, key: Key, by: MutationId) -> int:
        """Apply a validated delete; returns its change's seq."""
        edit = self.pending.get(key) or RowEdit()
        after = edit.deleted(by, exists_below=self._exists_below(key))
        if after is None:
            del self.pending[key]
        else:
            self.pending[key] = after
        del self.view[key]
        self.pending_mids.append(by)
        return self._change(key, "delete", None, None, "editor", by)

    def apply_reordered(self, reordered: Reordered, by: MutationId) -> int:
        """Apply a resolved, non-empty reorder; returns the seq of its last change."""
        table = table_named(reordered.table)
        name = ORDER_FIELD[table]
        seq = self.seq
        self.pending_mids.append(by)
        for row_id, value in reordered.positions:
            key = (table, row_id)
            self._edit(key).fields[name] = (value, by)
            self.view[key][name] = value
            seq = self._change(key, "update", None, {name: value}, "editor", by)
        return seq

    def replay(self, entry: JournalEntry) -> None:
        """Turn a journal entry into pending edits again, without checks: the state may have moved on.

        Everything it inserted may already be in the database, so a later delete is always sent.
        """
        by = entry.mutation_id
        mutation = entry.mutation
        match mutation:
            case Patch(_, table_name, row_id, values):
                keys = [(table_named(table_name), row_id)]
                self._edit(keys[0]).set_fields(values, by)
            case Insert(_, table_name, row):
                keys = [(table_named(table_name), RowId(str(row["id"])))]
                self._edit(keys[0]).set_insert(row, by)
            case Delete(_, table_name, row_id):
                keys = [(table_named(table_name), row_id)]
                self.pending[keys[0]] = RowEdit(delete=by)
            case Reordered(_, table_name, positions):
                table = table_named(table_name)
                keys = [(table, row_id) for row_id, _ in positions]
                for key, (_, value) in zip(keys, positions, strict=True):
                    self._edit(key).fields[ORDER_FIELD[table]] = (value, by)
            case _:
                assert_never(mutation)
        self.pending_mids.append(by)
        self.mutations.accept(*by)
        for key in keys:
            self.pending[key].maybe_exists = True
            self.refresh(key, "editor", by)

    # -- writes -------------------------------------------------------------------------------------

    def cut(self, batch_id: int) -> None:
        """Send the pending layer as a write batch; it becomes the in-flight layer."""
        edits = self.pending
        self.inflight = InFlight(
            batch_id, edits, tuple(self.pending_mids), self.pending_first_seq, self.clock
        )
        self.pending = {}
        self.pending_mids = []
        self.pending_first_seq = None
        self.flush_wanted = False
        self.out.append(WriteBatch(self.project_id, batch_id, order_ops(edits), self.inflight.mutation_ids))

    def write_ok(self, result: WriteOk) -> bool:
        """The in-flight batch is in the database. Returns True when the project row is gone."""
        inflight = self.inflight
        assert inflight is not None
        self.inflight = None
        touched = dict.fromkeys(inflight.edits)
        for table, row in result.rows:
            key = (table, RowId(str(row["id"])))
            touched[key] = None
            if accept_written(
                self.server.get(key), self.tombstones.get(key), row_version(row), inflight.sent
            ):
                self._set_server(key, row)
        gone = False
        for key in result.missing:
            touched[key] = None
            edit = inflight.edits.get(key)
            if key in self.server:
                self._remove_server(key, None)
            if key[0] == "projects":
                gone = True
            elif edit is None or edit.delete is None or edit.insert is not None:
                # Not our own delete: the row vanished under the batch, like a remote delete.
                self._drop_pending(key, set() if edit is None else edit.authors())
        self.out.append(RemoveJournal(self.project_id, inflight.mutation_ids))
        if gone:
            return True
        for key in touched:
            self.refresh(key, "db")
        saved = self.saved_seq()
        if saved > self.saved_emitted:
            self.saved_emitted = saved
            self.out.append(Saved(self.project_id, saved))
        return False

    def merge_back(self) -> None:
        """The in-flight batch failed: its edits become pending again, under the newer ones."""
        inflight = self.inflight
        assert inflight is not None
        self.inflight = None
        merged = {key: compose(edit, self.pending.get(key)) for key, edit in inflight.edits.items()}
        for key, edit in self.pending.items():
            merged.setdefault(key, edit)
        self.pending = merged
        self.pending_mids = [*inflight.mutation_ids, *self.pending_mids]
        if inflight.first_seq is not None:
            self.pending_first_seq = inflight.first_seq
