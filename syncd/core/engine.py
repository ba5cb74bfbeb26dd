"""SyncEngine: the single entry point to the core.

The daemon calls the ``receive_*`` methods and the other inputs one at a time, from one thread, and
after each call acts on `SyncEngine.take_effects`. It drives time with `SyncEngine.next_deadline`
and `SyncEngine.handle_timer`, passing its loop clock as ``now`` (seconds). The engine never raises
on bad editor input (it answers with an ``Error`` effect); it raises `ValueError` only when the
caller breaks the contract (an unknown connection, a project that was never opened).

Change numbering: an editor mutation gives one ``Change`` per row it changes (a reorder one per row
whose position changed; a reorder that changes nothing gives none); its ``Ack`` carries the seq of
its last change, or the current seq when it made none.
"""

import functools
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import assert_never

from syncd.core.backoff import Backoff
from syncd.core.clients import TAKEN_OVER_MESSAGE, client_refusal, take_over, taken_rejection
from syncd.core.debounce import Debouncer
from syncd.core.effects import (
    Ack,
    Append,
    Effect,
    Error,
    LoadProject,
    ProjectNotFound,
    RemoveJournal,
    Snapshot,
)
from syncd.core.history import History
from syncd.core.ids import ClientId, ConnId, Epoch, MutationId, ProjectId, RowId, UserId
from syncd.core.inputs import (
    Delete,
    Flush,
    Insert,
    Mutation,
    Patch,
    ProjectRows,
    RemoteChange,
    Reorder,
    SideChange,
    WriteFailed,
    WriteOk,
    WriteResult,
)
from syncd.core.journal import JournalEntry
from syncd.core.presence import PresenceGate
from syncd.core.project import InFlight, ProjectState, Session
from syncd.core.validate import Rejection, check_delete, check_insert, check_patch, resolve_reorder
from syncd.core.values import JsonValue

__all__ = ["ProjectProgress", "SyncEngine", "unsaved_count"]

UNAVAILABLE_MESSAGE = "saving to the database failed; your edits are kept and will be saved later"


def _check_rows(project_id: ProjectId, rows: ProjectRows) -> None:
    if rows.project is not None and rows.project.get("id") != project_id:
        raise ValueError(f"a read of project {project_id!r} returned the row of {rows.project.get('id')!r}")


@dataclass(frozen=True, slots=True)
class ProjectProgress:
    """What the daemon needs to know about one open project (for draining and for metrics).

    Attributes:
        loaded: the initial read arrived.
        editors: connections welcomed into it.
        waiting: connections held until it loads.
        pending: mutations waiting for the next batch (journal entries not yet replayed included).
        in_flight: the id of the batch the database is applying, if any.
        in_flight_mutations: how many mutations that batch covers.
        retry_at: when the next attempt after a failed batch is due, if one is scheduled.
        seq: the current seq.
        saved_seq: every editor change up to this seq is in the database.
        project: the project's row as its editors see it, unsaved edits included (None until it
            loads): a list read from the database shows it in place of the stored row, whose title
            the debounce may not have saved yet.
    """

    loaded: bool
    editors: int
    waiting: int
    pending: int
    in_flight: int | None
    in_flight_mutations: int
    retry_at: float | None
    seq: int
    saved_seq: int
    project: dict[str, JsonValue] | None


class SyncEngine:
    """The live state of every open project, driven by inputs, answering with effects.

    Args:
        quiet: seconds of quiet after a project's last edit before it is saved.
        max_wait: seconds after a project's first unsaved edit by which it is saved anyway.
        history_size, history_bytes: how many changes, and bytes of them, per project a reconnecting
            editor can catch up on (see `History`).
        presence_interval, presence_limit: see `PresenceGate` (an interval of 0: one per join or leave).
        retry_initial_delay: seconds before the first retry of a failed write (before jitter).
        retry_max_delay: the cap of retry delays in seconds; also the delay after a rejected write.
        jitter: returns a number in ``[0, 1)``; scales each retry delay into ``[1/2, 1)`` of itself.

    Raises:
        ValueError: durations out of range (see `Debouncer` and `syncd.core.backoff.backoff_delays`).
    """

    def __init__(
        self,
        *,
        quiet: float = 1.5,
        max_wait: float = 5.0,
        history_size: int = 10_000,
        history_bytes: int = 4 * 1024 * 1024,
        presence_interval: float = 0.0,
        presence_limit: int = 100,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        Backoff(retry_initial_delay, retry_max_delay, jitter).next_delay()  # checks the parameters now
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._presence = PresenceGate(presence_interval, presence_limit)
        self._retry_max_delay = retry_max_delay
        self._backoff = functools.partial(Backoff, retry_initial_delay, retry_max_delay, jitter)
        self._debouncer: Debouncer[ProjectId] = Debouncer(quiet=quiet, max_wait=max_wait)
        self._effects: list[Effect] = []
        self._projects: dict[ProjectId, ProjectState] = {}
        self._sessions: dict[ConnId, Session] = {}
        self._restored: dict[ProjectId, list[JournalEntry]] = {}
        self._taken_over: dict[ConnId, ProjectId] = {}
        self._retries: dict[ProjectId, float] = {}
        self._batch_ids = itertools.count(1)

    def take_effects(self) -> list[Effect]:
        """Return the effects queued since the last call, oldest first, and forget them."""
        # The projects hold this same list, so it is emptied in place.
        effects = self._effects.copy()
        self._effects.clear()
        return effects

    def next_deadline(self) -> float | None:
        """When `handle_timer` must be called next (None: no timer needed)."""
        retry = min(self._retries.values(), default=None)
        due = (self._debouncer.next_deadline(), retry, self._presence.next_deadline())
        return min((at for at in due if at is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Send the write batches that are due (debounced flushes and retries) and delayed presence."""
        self._presence.fire(self._projects, now)
        for project_id, at in list(self._retries.items()):
            if at <= now:
                del self._retries[project_id]
                self._flush(self._projects[project_id], force=True)
        for project_id in self._debouncer.pop_due(now):
            self._flush(self._projects[project_id], force=False)

    # -- projects -----------------------------------------------------------------------------------

    def open_project(self, project_id: ProjectId, epoch: Epoch, now: float) -> None:
        """Start loading a project (``LoadProject``) unless it is open or loading already."""
        if project_id in self._projects:
            return
        project = ProjectState(
            project_id,
            epoch,
            self._effects,
            History(self._history_size, self._history_bytes),
            self._backoff(),
        )
        project.restored = self._restored.pop(project_id, [])
        for entry in project.restored:
            project.mutations.accept(entry.client_id, entry.mid)
        self._projects[project_id] = project
        self._effects.append(LoadProject(project_id))

    def receive_loaded(self, project_id: ProjectId, rows: ProjectRows, now: float) -> None:
        """Take a project's initial read: replay its journal, save that at once, welcome the waiting.

        ``rows.project`` None means the project does not exist: the waiting editors get ``not_found``
        and the journaled edits for it are dropped (``ProjectNotFound``). A failed read is not this
        input: the daemon retries the load.

        Raises:
            ValueError: the rows hold another project's row (a bug in the adapter).
        """
        _check_rows(project_id, rows)
        project = self._projects.get(project_id)
        if project is None or project.loaded:
            return
        if rows.project is None or project.load(rows):
            self._forget(project)
            return
        self._flush(project, force=True)
        if project.reread_on_load:
            project.reread_on_load = False
            project.request_reread()
        waiting, project.waiting = project.waiting, {}
        for session in waiting.values():
            project.welcome(session)
        if waiting:
            self._presence.announce(project, now)

    def restore(self, entries: Sequence[JournalEntry]) -> None:
        """Replay journal entries (in journal order) as pending edits of their projects.

        Entries of a project that is not loaded wait for its load; the daemon must open it. Their
        mids count as accepted at once. No ``Append`` or ``Ack`` is emitted for them again.
        """
        touched: dict[ProjectId, None] = {}
        for entry in entries:
            project = self._projects.get(entry.project_id)
            if project is None:
                self._restored.setdefault(entry.project_id, []).append(entry)
            elif not project.loaded:
                project.restored.append(entry)
                project.mutations.accept(entry.client_id, entry.mid)
            else:
                project.replay(entry)
                touched[entry.project_id] = None
        for project_id in touched:
            self._flush(self._projects[project_id], force=False)

    def close_project(self, project_id: ProjectId, *, abandon: bool = False) -> bool:
        """Forget a project if nothing needs it (no editor, nothing unsaved), or at once with ``abandon``.

        Returns whether it is closed. ``abandon`` emits nothing: another instance owns the project now.
        """
        project = self._projects.get(project_id)
        if abandon:
            self._restored.pop(project_id, None)
            self._sessions = {c: s for c, s in self._sessions.items() if s.project_id != project_id}
        elif project is not None and (project.editors or project.waiting or project.unsaved()):
            return False
        if project is not None:
            self._drop(project)
        return True

    def open_projects(self) -> tuple[ProjectId, ...]:
        """The projects open or loading, in the order they were opened."""
        return tuple(self._projects)

    def status(self, project_id: ProjectId) -> ProjectProgress | None:
        """The state of one project, or None when it is not open."""
        project = self._projects.get(project_id)
        return None if project is None else _progress(project, self._retries.get(project_id))

    def pending_count(self) -> int:
        """How many accepted mutations are not yet known to be in the database (in flight included)."""
        waiting = sum(len(entries) for entries in self._restored.values())
        return waiting + sum(len(project.unsaved()) for project in self._projects.values())

    def _drop(self, project: ProjectState) -> None:
        del self._projects[project.project_id]
        self._debouncer.discard(project.project_id)
        self._presence.discard(project.project_id)
        self._retries.pop(project.project_id, None)

    def _forget(self, project: ProjectState) -> None:
        """The project does not exist: drop it, its connections and its unsaved edits."""
        conns = (*project.editors, *project.waiting)
        for conn in conns:
            del self._sessions[conn]
            self._effects.append(
                Error(project.project_id, conn, None, "not_found", "the project does not exist")
            )
        dropped = project.unsaved()
        self._effects.append(ProjectNotFound(project.project_id, conns, dropped))
        if dropped:
            self._effects.append(RemoveJournal(project.project_id, dropped))
        self._drop(project)

    # -- editors ------------------------------------------------------------------------------------

    def attach(
        self,
        conn: ConnId,
        client_id: ClientId,
        user_id: UserId,
        project_id: ProjectId,
        resume: tuple[Epoch, int] | None,
        now: float,
    ) -> None:
        """Let a connection into an open project: ``Welcome``, ``CatchUp`` or ``Snapshot``, then ``Presence``.

        While the project loads, the connection waits. The client id is bound to ``user_id`` here
        (`check_client`); a connection with the same client id is taken over (``Error`` ``conflict``,
        then ``Disconnect`` 4409).

        Raises:
            ValueError: the connection is attached already, the project was not opened, or
                `check_client` refuses the client id (the caller must ask it first).
        """
        if conn in self._sessions:
            raise ValueError(f"connection {conn!r} is attached already")
        project = self._projects.get(project_id)
        if project is None:
            raise ValueError(f"project {project_id!r} is not open")
        if self.check_client(project_id, client_id, user_id) is not None:
            raise ValueError(f"client id {client_id!r} is bound to another user in project {project_id!r}")
        project.owners[client_id] = user_id
        for replaced in take_over(project, client_id):
            del self._sessions[replaced]
            self._taken_over[replaced] = project_id
        session = Session(conn, client_id, user_id, project_id, resume)
        self._sessions[conn] = session
        if project.loaded:
            project.welcome(session)
            self._presence.announce(project, now, newcomer=conn)
        else:
            project.waiting[conn] = session

    def check_client(self, project_id: ProjectId, client_id: ClientId, user_id: UserId) -> Rejection | None:
        """Whether a connection of ``user_id`` may act as ``client_id`` in a project (before `attach`).

        A client id is bound to the first user that attaches with it while the project is open
        (`syncd.core.clients` says why); any other user is refused with ``forbidden``.
        """
        return client_refusal(self._projects.get(project_id), client_id, user_id)

    def detach(self, conn: ConnId, now: float) -> None:
        """Forget a connection (no-op if unknown); the others get the new ``Presence``."""
        self._taken_over.pop(conn, None)
        session = self._sessions.pop(conn, None)
        if session is None:
            return
        project = self._projects[session.project_id]
        project.waiting.pop(conn, None)
        if project.editors.pop(conn, None) is not None:
            self._presence.announce(project, now)

    def snapshot_for(self, conn: ConnId) -> Snapshot | None:
        """A fresh snapshot for a welcomed connection (None while its project loads, or once taken over)."""
        if conn in self._taken_over:
            return None
        project = self._project_of(conn)
        return project.snapshot(conn) if conn in project.editors else None

    def _project_of(self, conn: ConnId) -> ProjectState:
        session = self._sessions.get(conn)
        if session is None:
            raise ValueError(f"connection {conn!r} is not attached")
        return self._projects[session.project_id]

    def receive_mutation(self, conn: ConnId, mutation: Mutation, now: float) -> None:
        """Apply an editor's mutation: ``Append``, its ``Change``s, then ``Ack`` (or an ``Error``).

        A mutation whose mid was accepted already is acknowledged again (with its original seq when
        remembered) and applied zero times. A connection that was taken over gets ``conflict``.

        Raises:
            ValueError: the connection is not attached.
        """
        session = self._sending(conn, mutation.mid)
        if session is None:
            return
        project, client_id, mid = self._projects[session.project_id], session.client_id, mutation.mid
        by: MutationId = (client_id, mid)
        match mutation:
            case Patch():
                key = check_patch(mutation, project.project_id, project.view)
                if isinstance(key, Rejection):
                    self._reject(project, conn, mid, key)
                    return
                self._effects.append(Append(JournalEntry(project.project_id, client_id, mid, mutation)))
                seq = project.apply_patch(key, mutation.set, by)
            case Insert():
                checked = check_insert(mutation, project.project_id, project.view)
                if not isinstance(checked, Rejection):
                    checked = taken_rejection(project, self._projects.values(), checked[:2]) or checked
                if isinstance(checked, Rejection):
                    self._reject(project, conn, mid, checked)
                    return
                table, row_id, row = checked
                journaled = mutation if row is mutation.row else Insert(mid, table, row)
                self._effects.append(Append(JournalEntry(project.project_id, client_id, mid, journaled)))
                seq = project.apply_insert((table, row_id), row, by)
            case Delete():
                key = check_delete(mutation, project.view)
                if isinstance(key, Rejection):
                    self._reject(project, conn, mid, key)
                    return
                self._effects.append(Append(JournalEntry(project.project_id, client_id, mid, mutation)))
                seq = project.apply_delete(key, by)
            case Reorder():
                reordered = resolve_reorder(mutation, project.view)
                if isinstance(reordered, Rejection):
                    self._reject(project, conn, mid, reordered)
                    return
                if not reordered.positions:
                    self._accept(project, conn, by, project.seq)
                    return
                self._effects.append(Append(JournalEntry(project.project_id, client_id, mid, reordered)))
                seq = project.apply_reordered(reordered, by)
            case Flush():
                self._accept(project, conn, by, project.seq)
                self._flush(project, force=False)
                return
            case _:
                assert_never(mutation)
        self._accept(project, conn, by, seq)
        self._debouncer.touch(project.project_id, now)

    def _sending(self, conn: ConnId, mid: int) -> Session | None:
        """The session of a connection whose mutation must be applied; None when it is answered already.

        A taken-over connection gets ``conflict``, one whose project loads gets ``unavailable``, and a
        mid accepted already gets its ``Ack`` again: the seq of the mutation's last change if still in
        history; else (a flush, a mutation that changed nothing, one from before a restart) the current.
        """
        taken_over = self._taken_over.get(conn)
        if taken_over is not None:
            self._effects.append(Error(taken_over, conn, mid, "conflict", TAKEN_OVER_MESSAGE))
            return None
        project = self._project_of(conn)
        session = project.editors.get(conn)
        if session is None:
            self._reject(project, conn, mid, Rejection("unavailable", "the project is still loading"))
            return None
        if project.mutations.seen(session.client_id, mid):
            seq = project.history.ack_seq(session.client_id, mid)
            self._effects.append(Ack(conn, mid, project.seq if seq is None else seq))
            return None
        return session

    def _accept(self, project: ProjectState, conn: ConnId, by: MutationId, seq: int) -> None:
        project.mutations.accept(by[0], by[1])
        self._effects.append(Ack(conn, by[1], seq))

    def _reject(self, project: ProjectState, conn: ConnId, mid: int, rejection: Rejection) -> None:
        self._effects.append(Error(project.project_id, conn, mid, rejection.code, rejection.message))

    # -- the database -------------------------------------------------------------------------------

    def receive_remote_change(self, project_id: ProjectId, change: RemoteChange, now: float) -> None:
        """Apply a row change from the change feed (echoes and stale rows are dropped).

        Changes for a project still loading are applied right after its load; changes for a project
        that is not open are ignored.
        """
        project = self._projects.get(project_id)
        if project is None:
            return
        if not project.loaded:
            project.early_changes.append(change)
        elif project.receive_remote(change):
            self._forget(project)

    def receive_side_change(self, project_id: ProjectId, change: SideChange, now: float) -> bool:
        """Pass on a change of a side row (exports, audio files) as the project's next ``Change``.

        The engine keeps no side rows (the daemon does, for snapshots); the change takes the next seq so
        that it reaches editors in order. Returns False, doing nothing, when the project is not open or
        not loaded yet (the rows are read with its load).
        """
        project = self._projects.get(project_id)
        if project is None or not project.loaded:
            return False
        project.side_change(change)
        return True

    def request_reread(self, project_id: ProjectId) -> None:
        """Ask for a full read of an open project (``RequestReread``): after a subscribe; anti-entropy.

        A project still loading is read again right after its load: the change feed may have started
        listening after the load's read began, and a change in between would be missed.
        """
        project = self._projects.get(project_id)
        if project is None:
            return
        if project.loaded:
            project.request_reread()
        else:
            project.reread_on_load = True

    def receive_reread(self, project_id: ProjectId, token: int, rows: ProjectRows, now: float) -> None:
        """Reconcile the answer to a ``RequestReread``; unknown tokens and projects are ignored.

        Raises:
            ValueError: the rows hold another project's row (a bug in the adapter).
        """
        _check_rows(project_id, rows)
        project = self._projects.get(project_id)
        if project is not None and project.receive_reread(token, rows):
            self._forget(project)

    def receive_write_result(self, project_id: ProjectId, result: WriteResult, now: float) -> None:
        """Take the outcome of the project's batch in flight; a result for any other batch is ignored.

        On success the next batch goes at once if a flush was asked for meanwhile. On failure the edits
        are kept; a retryable failure is retried after an exponential, jittered delay, a rejection
        after ``retry_max_delay``, and the editors get ``unavailable``.
        """
        project = self._projects.get(project_id)
        if project is None or project.inflight is None or project.inflight.batch_id != result.batch_id:
            return
        match result:
            case WriteOk():
                if project.write_ok(result):
                    self._forget(project)
                    return
                project.backoff.reset()
                if project.flush_wanted:
                    self._flush(project, force=True)
            case WriteFailed(retryable=retryable):
                project.merge_back()
                if retryable:
                    delay = project.backoff.next_delay()
                else:
                    delay = self._retry_max_delay
                    self._effects.append(Error(project_id, None, None, "unavailable", UNAVAILABLE_MESSAGE))
                self._retries[project_id] = now + delay
            case _:
                assert_never(result)

    def flush_all(self, now: float) -> None:
        """Shutdown: every loaded project with unsaved edits sends its batch now (or after the one in flight).

        A scheduled retry is not waited for.
        """
        self._debouncer.flush_all()
        for project in list(self._projects.values()):
            if project.loaded:
                self._flush(project, force=True)

    def _flush(self, project: ProjectState, *, force: bool) -> None:
        """Send the project's pending edits now, or as soon as its batch in flight (or its retry) allows.

        ``force`` skips the wait for a scheduled retry.
        """
        self._debouncer.discard(project.project_id)
        if not project.has_pending():
            return
        if project.inflight is not None or (not force and project.project_id in self._retries):
            project.flush_wanted = True
            return
        self._retries.pop(project.project_id, None)
        project.cut(next(self._batch_ids))


def _progress(project: ProjectState, retry_at: float | None) -> ProjectProgress:
    inflight: InFlight | None = project.inflight
    return ProjectProgress(
        loaded=project.loaded,
        editors=len(project.editors),
        waiting=len(project.waiting),
        pending=_pending(project),
        in_flight=None if inflight is None else inflight.batch_id,
        in_flight_mutations=_in_flight_mutations(project),
        retry_at=retry_at,
        seq=project.seq,
        saved_seq=project.saved_seq(),
        project=_live_row(project),
    )


def _live_row(project: ProjectState) -> dict[str, JsonValue] | None:
    row = project.view.get(("projects", RowId(project.project_id))) if project.loaded else None
    return None if row is None else dict(row)


def unsaved_count(engine: SyncEngine, project_id: ProjectId) -> int:
    """Mutations of a project not in the database yet; 0 when it is not open.

    The ``pending + in_flight_mutations`` of :meth:`SyncEngine.status`, without building the whole
    status: the daemon asks once per edit. A function beside the class, which is at its size limit.
    """
    project = engine._projects.get(project_id)
    return 0 if project is None else _pending(project) + _in_flight_mutations(project)


def _pending(project: ProjectState) -> int:
    """Mutations waiting for the next save: accepted since the last batch, or restored from the journal."""
    return len(project.pending_mids) + len(project.restored)


def _in_flight_mutations(project: ProjectState) -> int:
    """Mutations of the batch being written."""
    return 0 if project.inflight is None else len(project.inflight.mutation_ids)
