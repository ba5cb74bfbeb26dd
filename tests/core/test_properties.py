"""Convergence of the sync engine under random edits, remote writes, lost messages, failures and restarts.

A hypothesis state machine drives one project through a `SyncEngine` and a small in-memory model of
the database that implements the write batch apply rule (with ``syncd_mutations``). The machine acts
as the daemon: it keeps the journal from ``Append``/``RemoveJournal``, feeds the database's change
events back with delay, reordering and loss, answers loads and re-reads, makes writes fail, and
restarts the engine from the journal. Editors keep views built only from the effects they receive.

After each run, once edits stop and every timer has fired: every editor's view equals the database;
every acknowledged write is in the database unless a later edit or a delete superseded it; no
mutation was applied twice; every editor saw a gapless seq.

Profiles: ``syncd-core`` (default, quick) and ``syncd-core-long``; pick one with the environment
variable ``SYNCD_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from syncd.core.batch import DeleteRow, InsertRow, UpdateRow, WriteBatch
from syncd.core.effects import (
    Ack,
    Append,
    CatchUp,
    Change,
    Effect,
    Error,
    LoadProject,
    Presence,
    ProjectNotFound,
    RemoveJournal,
    RequestReread,
    Saved,
    Snapshot,
    Welcome,
)
from syncd.core.engine import SyncEngine
from syncd.core.ids import ClientId, ConnId, MutationId, ProjectId, RowId, UserId
from syncd.core.inputs import (
    Delete,
    Flush,
    Insert,
    Mutation,
    Patch,
    ProjectRows,
    RemoteChange,
    RemoteDelete,
    RemoteUpsert,
    Reorder,
    WriteFailed,
    WriteOk,
    WriteResult,
)
from syncd.core.journal import JournalEntry
from syncd.core.schema import Table, table_named
from syncd.core.values import JsonValue, Row

settings.register_profile(
    "syncd-core",
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "syncd-core-long",
    max_examples=1000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PROJECT = ProjectId("p-1")
CLIENTS = (ClientId("c-a"), ClientId("c-b"), ClientId("c-c"))
Key = tuple[Table, RowId]

EDITOR_FIELDS: dict[Table, tuple[str, ...]] = {
    "projects": ("title", "script"),
    "scenes": ("heading", "body", "scene_index"),
    "clips": ("prompt", "status", "order_index"),
}
DEFAULTS: dict[Table, dict[str, JsonValue]] = {
    "projects": {},
    "scenes": {"heading": "", "body": "", "scene_index": 0},
    "clips": {"prompt": "", "status": "pending", "order_index": 0},
}
INDEX_FIELDS = frozenset({"scene_index", "order_index"})
HISTORY = 6
"""A short history, so that resuming editors fall back to snapshots too."""


@dataclass
class ModelDb:
    """The database: rows with versions, ``syncd_mutations``, and a feed of change events.

    ``syncd_mutations`` keeps each client's highest applied mid (``highest``), and the apply rule counts
    every mid up to it as applied. That holds only if the engine never sends a mid below its client's
    highest that was not applied yet; ``recorded`` keeps every mutation id a batch ever listed, so that
    `apply` can check it.
    """

    rows: dict[Key, dict[str, JsonValue]] = field(default_factory=dict)
    highest: dict[str, int] = field(default_factory=dict)
    recorded: set[MutationId] = field(default_factory=set)
    applied: Counter[MutationId] = field(default_factory=Counter)
    events: list[RemoteChange] = field(default_factory=list)

    def _upsert_event(self, key: Key) -> None:
        self.events.append(RemoteUpsert(key[0], dict(self.rows[key])))

    def _delete(self, key: Key) -> None:
        row = self.rows.pop(key)
        version = row["version"]
        assert isinstance(version, int)
        self.events.append(RemoteDelete(key[0], key[1], version))

    def write(self, key: Key, values: dict[str, JsonValue]) -> None:
        """Another writer changes a row."""
        row = self.rows[key]
        row.update(values)
        version = row["version"]
        assert isinstance(version, int)
        row["version"] = version + 1
        self._upsert_event(key)

    def insert(self, key: Key, values: dict[str, JsonValue]) -> None:
        """Another writer (or a batch) inserts a row."""
        self.rows[key] = {**DEFAULTS[key[0]], **values, "version": 1}
        self._upsert_event(key)

    def delete(self, key: Key) -> None:
        """Another writer deletes a row."""
        self._delete(key)

    def read(self) -> ProjectRows:
        """One full read of the project, with each client's highest applied mid (``syncd_applied_mids``)."""
        project = self.rows.get(("projects", RowId(PROJECT)))
        scenes = tuple(dict(row) for (table, _), row in self.rows.items() if table == "scenes")
        clips = tuple(dict(row) for (table, _), row in self.rows.items() if table == "clips")
        applied = {ClientId(client_id): mid for client_id, mid in self.highest.items()}
        return ProjectRows(None if project is None else dict(project), scenes, clips, applied)

    def _done(self, by: MutationId) -> bool:
        return by[1] <= self.highest.get(by[0], -1)

    def apply(self, batch: WriteBatch) -> WriteOk:
        """The apply rule of `syncd.core.batch`, in one step."""
        for client_id, mid in batch.mutation_ids:
            assert mid > self.highest.get(client_id, -1) or (client_id, mid) in self.recorded, (
                f"mid {mid} of {client_id} comes after its mid {self.highest[client_id]} was applied"
            )
        touched: dict[Key, None] = {}
        applied: set[MutationId] = set()
        for op in batch.ops:
            key = (op.table, op.id)
            touched[key] = None
            match op:
                case DeleteRow(by=by):
                    if not self._done(by) and key in self.rows:
                        self._delete(key)
                        applied.add(by)
                case InsertRow(row=row, by=by):
                    if not self._done(by) and key not in self.rows:
                        self.insert(key, dict(row))
                        applied.add(by)
                case UpdateRow(fields=fields):
                    if key in self.rows:
                        values = {name: w.value for name, w in fields.items() if not self._done(w.by)}
                        applied.update(w.by for w in fields.values() if not self._done(w.by))
                        if values:
                            self.write(key, values)
        self.recorded.update(batch.mutation_ids)
        for client_id, mid in batch.mutation_ids:
            self.highest[client_id] = max(mid, self.highest.get(client_id, mid))
        self.applied.update(applied)
        rows = tuple((key[0], dict(self.rows[key])) for key in touched if key in self.rows)
        missing = tuple(key for key in touched if key not in self.rows)
        return WriteOk(batch.batch_id, rows, missing)


def visible(row: Row) -> dict[str, JsonValue]:
    return {name: value for name, value in row.items() if name != "version"}


@dataclass
class EditorView:
    """One editor: its connection, and the rows and seq it learned from effects alone."""

    client_id: ClientId
    conn: ConnId | None = None
    welcomed: bool = False
    epoch: str | None = None
    seq: int = -1
    rows: dict[Key, dict[str, JsonValue]] = field(default_factory=dict)
    mid: int = 0
    last: tuple[Mutation, int | None, int] | None = None
    """The last accepted mutation, the seq of its last change (None: it made none), and the engine
    generation that accepted it."""

    def snapshot(self, snapshot: Snapshot) -> None:
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.rows = {("projects", RowId(PROJECT)): dict(snapshot.project)}
        children: list[tuple[Table, tuple[Row, ...]]] = [
            ("scenes", snapshot.scenes),
            ("clips", snapshot.clips),
        ]
        for table, rows in children:
            for row in rows:
                self.rows[(table, RowId(str(row["id"])))] = dict(row)

    def change(self, change: Change) -> None:
        assert change.seq == self.seq + 1, f"gap: seq {change.seq} after {self.seq}"
        self.seq = change.seq
        key = (table_named(change.table), change.id)
        if change.op == "insert":
            assert key not in self.rows
            assert change.row is not None
            self.rows[key] = dict(change.row)
        elif change.op == "update":
            assert change.set
            self.rows[key].update(change.set)
        else:
            del self.rows[key]


@dataclass
class Write:
    """An acknowledged write of one field, with the step at which it was accepted."""

    step: int
    value: JsonValue


class SyncMachine(RuleBasedStateMachine):
    """The daemon, the database and three editors around one engine."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.step = 0
        self.epochs = 0
        self.db = ModelDb()
        self.db.rows[("projects", RowId(PROJECT))] = {"id": PROJECT, "title": "t", "script": "", "version": 1}
        for n in range(3):
            scene = RowId(f"s-{n}")
            self.db.rows[("scenes", scene)] = {
                "id": scene,
                "project_id": PROJECT,
                **DEFAULTS["scenes"],
                "scene_index": n,
                "version": 1,
            }
        self.db.events.clear()
        self.journal: list[JournalEntry] = []
        self.editors = [EditorView(client) for client in CLIENTS]
        self.conns = 0
        self.ids = 0
        self.batch: WriteBatch | None = None
        self.late_result: WriteResult | None = None
        self.reread_tokens: list[int] = []
        self.reads: list[tuple[int, ProjectRows]] = []
        self.loading = False
        self.writes: dict[tuple[Key, str], Write] = {}
        self.remote_writes: dict[tuple[Key, str], list[Write]] = {}
        self.deleted: set[Key] = set()
        self.editor_deleted: set[Key] = set()
        self.inserted: list[Key] = []
        self.accepted: set[MutationId] = set()
        self.saved = 0
        self.engine = self._new_engine()

    # -- the daemon ---------------------------------------------------------------------------------

    def _new_engine(self) -> SyncEngine:
        self.epochs += 1
        engine = SyncEngine(
            quiet=0.5,
            max_wait=2.0,
            history_size=HISTORY,
            retry_initial_delay=0.5,
            retry_max_delay=4.0,
            jitter=lambda: 0.5,
        )
        engine.restore(list(self.journal))
        engine.open_project(PROJECT, f"epoch-{self.epochs}", self.now)
        self.engine = engine
        self.saved = 0
        self._dispatch()
        return engine

    def _editor_of(self, conn: ConnId) -> EditorView:
        return next(e for e in self.editors if e.conn == conn)

    def _dispatch(self) -> list[Effect]:
        effects = self.engine.take_effects()
        for effect in effects:
            match effect:
                case LoadProject():
                    self.loading = True
                case Append(entry):
                    self.journal.append(entry)
                case RemoveJournal(_, mutation_ids):
                    gone = set(mutation_ids)
                    self.journal = [e for e in self.journal if e.mutation_id not in gone]
                case WriteBatch():
                    assert self.batch is None, "two batches in flight"
                    self.batch = effect
                case RequestReread(_, token):
                    self.reread_tokens.append(token)
                case Welcome(conn, _, epoch, _):
                    editor = self._editor_of(conn)
                    editor.welcomed = True
                    editor.epoch = epoch
                case Snapshot(conn=conn):
                    assert conn is not None
                    self._editor_of(conn).snapshot(effect)
                case CatchUp(conn, _, changes):
                    editor = self._editor_of(conn)
                    for change in changes:
                        editor.change(change)
                case Change():
                    self._record(effect)
                    for editor in self.editors:
                        if editor.welcomed:
                            editor.change(effect)
                case Saved(_, seq):
                    assert seq > self.saved
                    self.saved = seq
                case Ack() | Error() | Presence():
                    pass
                case ProjectNotFound():
                    raise AssertionError("the project never disappears in this model")
        return effects

    def _record(self, change: Change) -> None:
        """Remember what an editor change wrote, the first time its mutation is accepted."""
        if change.origin != "editor":
            return
        assert change.client_id is not None
        assert change.mid is not None
        by = (change.client_id, change.mid)
        if by in self.accepted:
            return  # replayed from the journal, or a resend
        key = (table_named(change.table), change.id)
        if change.op == "delete":
            self.deleted.add(key)
            self.editor_deleted.add(key)
            return
        if change.op == "insert":
            self.inserted.append(key)
        values = change.row if change.op == "insert" else change.set
        assert values is not None
        for name, value in values.items():
            if name not in ("id", "project_id"):
                self.writes[(key, name)] = Write(self.step, value)

    def _accept_mids(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Change) and effect.origin == "editor":
                assert effect.client_id is not None
                assert effect.mid is not None
                self.accepted.add((effect.client_id, effect.mid))

    def _run(self, effects: list[Effect]) -> None:
        self._accept_mids(effects)

    @initialize()
    def start(self) -> None:
        """The project is loaded and every editor is attached."""
        self.answer_load()
        for who in range(len(self.editors)):
            self.attach(who)

    # -- editors ------------------------------------------------------------------------------------

    def attach(self, who: int) -> None:
        editor = self.editors[who]
        self.conns += 1
        editor.conn = ConnId(f"conn-{self.conns}")
        resume = None if editor.epoch is None else (editor.epoch, editor.seq)
        self.engine.attach(editor.conn, editor.client_id, UserId("u"), PROJECT, resume, self.now)
        self._run(self._dispatch())

    @rule(who=st.integers(0, 2))
    def reconnect(self, who: int) -> None:
        """An editor disconnects, or connects again (resuming from what it saw)."""
        editor = self.editors[who]
        if editor.conn is None:
            self.attach(who)
            return
        self.engine.detach(editor.conn, self.now)
        editor.conn = None
        editor.welcomed = False
        self._run(self._dispatch())

    def _send(self, editor: EditorView, mutation: Mutation) -> None:
        assert editor.conn is not None
        self.step += 1
        self.engine.receive_mutation(editor.conn, mutation, self.now)
        effects = self._dispatch()
        acks = [e for e in effects if isinstance(e, Ack)]
        errors = [e for e in effects if isinstance(e, Error) and e.mid == mutation.mid]
        assert len(acks) + len(errors) == 1
        if acks:
            changes = [e for e in effects if isinstance(e, Change) and e.origin == "editor"]
            status = self.engine.status(PROJECT)
            assert status is not None
            assert acks[0].seq == (changes[-1].seq if changes else status.seq)
            editor.last = (mutation, changes[-1].seq if changes else None, self.epochs)
        self._run(effects)

    def _pick(self, editor: EditorView, tables: tuple[Table, ...], choice: int) -> Key | None:
        """A row of the editor's view; every other choice, the newest row this editor inserted.

        Editing fresh inserts often exercises the coalescing of inserts with later patches and deletes.
        """
        own = [key for key in self.inserted if key in editor.rows and key[0] in tables]
        if own and choice % 2 == 0:
            return own[-1]
        keys = sorted(key for key in editor.rows if key[0] in tables)
        return keys[choice % len(keys)] if keys else None

    @rule(
        who=st.integers(0, 2),
        kind=st.sampled_from(["patch", "patch", "patch", "insert", "delete", "reorder", "flush", "resend"]),
        choices=st.lists(st.integers(0, 50), min_size=1, max_size=3),
        name=st.integers(0, 2),
    )
    def edit(self, who: int, kind: str, choices: list[int], name: int) -> None:
        """An editor sends a mutation (from its own view, so some are refused as stale)."""
        editor = self.editors[who]
        if not editor.welcomed:
            return
        if kind == "resend":
            # The last accepted mutation again: applied zero times, acknowledged with the seq of its
            # last change (still in history here), or the current seq when it made no change.
            if editor.last is not None and editor.last[2] == self.epochs:
                again, seq, _ = editor.last
                assert editor.conn is not None
                status = self.engine.status(PROJECT)
                assert status is not None
                self.engine.receive_mutation(editor.conn, again, self.now)
                expected = status.seq if seq is None or seq <= status.seq - HISTORY else seq
                assert self._dispatch() == [Ack(editor.conn, again.mid, expected)]
            return
        editor.mid += 1
        mid = editor.mid
        mutation: Mutation
        if kind == "patch":
            key = self._pick(editor, ("projects", "scenes", "clips"), choices[0])
            assert key is not None
            fields = EDITOR_FIELDS[key[0]]
            field_name = fields[name % len(fields)]
            value: JsonValue = choices[-1] % 5 if field_name in INDEX_FIELDS else f"{editor.client_id}:{mid}"
            mutation = Patch(mid, key[0], key[1], {field_name: value})
        elif kind == "insert":
            table: Table = "scenes" if name else "clips"
            text = "heading" if table == "scenes" else "prompt"
            mutation = Insert(
                mid, table, {"id": f"{editor.client_id}-row-{mid}", text: f"{editor.client_id}:{mid}"}
            )
        elif kind == "delete":
            target = self._pick(editor, ("scenes", "clips"), choices[0]) or ("scenes", RowId("no-such-row"))
            mutation = Delete(mid, target[0], target[1])
        elif kind == "reorder":
            ids: list[RowId] = []
            for choice in choices:
                picked = self._pick(editor, ("scenes",), choice)
                if picked is not None and picked[1] not in ids:
                    ids.append(picked[1])
            mutation = Reorder(mid, "scenes", tuple(ids))
        else:
            mutation = Flush(mid)
        self._send(editor, mutation)

    # -- the database -------------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(["write", "write", "insert", "delete"]),
        choice=st.integers(0, 50),
        name=st.integers(0, 2),
    )
    def remote(self, kind: str, choice: int, name: int) -> None:
        """Another writer changes the database."""
        self.step += 1
        self.ids += 1
        if kind == "insert":
            table: Table = "scenes" if name else "clips"
            row_id = RowId(f"remote-row-{self.ids}")
            self.db.insert((table, row_id), {"id": row_id, "project_id": PROJECT})
            return
        tables = ("scenes", "clips") if kind == "delete" else ("projects", "scenes", "clips")
        keys = sorted(key for key in self.db.rows if key[0] in tables)
        if not keys:
            return
        key = keys[choice % len(keys)]
        if kind == "delete":
            self.deleted.add(key)
            self.db.delete(key)
            return
        fields = EDITOR_FIELDS[key[0]]
        field_name = fields[name % len(fields)]
        value: JsonValue = 100 + self.ids if field_name in INDEX_FIELDS else f"remote:{self.ids}"
        self.db.write(key, {field_name: value})
        self.remote_writes.setdefault((key, field_name), []).append(Write(self.step, value))

    @rule(choice=st.integers(0, 50), lose=st.booleans())
    def deliver_event(self, choice: int, lose: bool) -> None:
        """The change feed delivers (or loses) one event, not necessarily the oldest."""
        if not self.db.events:
            return
        event = self.db.events.pop(choice % len(self.db.events))
        if not lose:
            self.engine.receive_remote_change(PROJECT, event, self.now)
            self._run(self._dispatch())

    @precondition(lambda self: self.loading)
    @rule()
    def answer_load(self) -> None:
        self.loading = False
        self.engine.receive_loaded(PROJECT, self.db.read(), self.now)
        self._run(self._dispatch())

    @rule(phase=st.sampled_from(["ask", "read", "deliver"]))
    def reread(self, phase: str) -> None:
        """Re-reads are asked for, run against the database, and answered, each at its own time."""
        if phase == "ask":
            self.engine.request_reread(PROJECT)
            self._run(self._dispatch())
        elif phase == "read" and self.reread_tokens:
            self.reads.append((self.reread_tokens.pop(0), self.db.read()))
        elif phase == "deliver" and self.reads:
            token, rows = self.reads.pop(0)
            self.engine.receive_reread(PROJECT, token, rows, self.now)
            self._run(self._dispatch())

    @precondition(lambda self: self.batch is not None and self.late_result is None)
    @rule(outcome=st.sampled_from(["ok", "ok", "late", "retry", "retry-applied", "reject", "reject-applied"]))
    def answer_write(self, outcome: str) -> None:
        """The database answers the batch in flight; a failure may come after the batch committed."""
        batch = self.batch
        assert batch is not None
        if outcome in ("ok", "late") or outcome.endswith("applied"):
            result: WriteResult = self.db.apply(batch)
        if outcome == "late":
            self.late_result = result
            return
        if outcome != "ok":
            result = WriteFailed(batch.batch_id, outcome.startswith("retry"), "boom")
        self._deliver(result)

    @precondition(lambda self: self.late_result is not None)
    @rule()
    def deliver_late_result(self) -> None:
        assert self.late_result is not None
        result, self.late_result = self.late_result, None
        self._deliver(result)

    def _deliver(self, result: WriteResult) -> None:
        self.batch = None
        self.engine.receive_write_result(PROJECT, result, self.now)
        self._run(self._dispatch())

    @rule(dt=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline <= self.now:
            self.engine.handle_timer(self.now)
            self._run(self._dispatch())

    @rule(applied=st.booleans(), settle=st.booleans())
    def restart(self, applied: bool, settle: bool) -> None:
        """The daemon is killed and starts again from the journal; a batch in flight may have committed.

        With ``settle`` the load is answered and the editors reconnect at once; otherwise later rules do it.
        """
        if self.batch is not None and applied and self.late_result is None:
            self.db.apply(self.batch)
        self.batch = None
        self.late_result = None
        self.reread_tokens.clear()
        self.reads.clear()
        self.db.events.clear()
        for editor in self.editors:
            editor.conn = None
            editor.welcomed = False
        self.loading = False
        self._new_engine()
        if settle:
            self.start()

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def editors_see_the_live_view(self) -> None:
        for editor in self.editors:
            if editor.welcomed:
                assert editor.conn is not None
                snapshot = self.engine.snapshot_for(editor.conn)
                assert snapshot is not None
                live = EditorView(editor.client_id)
                live.snapshot(snapshot)
                assert editor.rows == live.rows
                assert editor.seq == snapshot.seq

    def teardown(self) -> None:
        if currently_in_test_context():
            event(f"accepted mutations: {len(self.accepted) // 5 * 5}+")
            event(f"engine generations: {self.epochs}")
        self._quiesce()
        self.engine.request_reread(PROJECT)
        self._run(self._dispatch())
        self._quiesce()
        for editor in self.editors:
            if editor.conn is None:
                self.attach(self.editors.index(editor))
        db = {key: visible(row) for key, row in self.db.rows.items()}
        for editor in self.editors:
            assert editor.rows == db
        self.editors_see_the_live_view()
        for (key, name), write in self.writes.items():
            row = self.db.rows.get(key)
            if row is None:
                assert key in self.deleted, f"acknowledged row {key} is missing from the database"
                continue
            later = [w.value for w in self.remote_writes.get((key, name), []) if w.step > write.step]
            assert row.get(name) == write.value or row.get(name) in later, (key, name, write, row)
        for key in self.editor_deleted:
            assert key not in self.db.rows, f"acknowledged delete of {key} is not in the database"
        assert all(count == 1 for count in self.db.applied.values()), self.db.applied
        assert not self.journal
        assert self.engine.pending_count() == 0
        assert self.accepted <= self.db.recorded

    def _quiesce(self) -> None:
        for _ in range(200):
            if self.loading:
                self.answer_load()
            elif self.db.events:
                self.deliver_event(0, False)
            elif self.reread_tokens:
                self.reread("read")
            elif self.reads:
                self.reread("deliver")
            elif self.late_result is not None:
                self.deliver_late_result()
            elif self.batch is not None:
                self.answer_write("ok")
            elif (deadline := self.engine.next_deadline()) is not None:
                self.now = max(self.now, deadline)
                self.engine.handle_timer(self.now)
                self._run(self._dispatch())
            else:
                return
        raise AssertionError("the engine never settles")


TestSyncEngineConverges = SyncMachine.TestCase
TestSyncEngineConverges.settings = settings.get_profile(
    os.environ.get("SYNCD_HYPOTHESIS_PROFILE", "syncd-core")
)
