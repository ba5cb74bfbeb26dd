"""ProjectHost: runs the sans-I/O engine for every open project and carries out what it asks.

Only the host calls the :class:`~syncd.core.engine.SyncEngine`. The gateway and the backend's change
feed hand it their inputs by calling its methods on the event loop; each call feeds the engine and
acts on the effects before it returns, with no ``await`` in between, so calls are serialized by
construction (the loop runs one at a time) without an extra queue hop on the hot path. Slow work (the
database, the journal) runs in tasks whose results come back as engine inputs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, assert_never

from syncd import outbound
from syncd.adapters.gateway import EditorConnection
from syncd.adapters.outbox import Outbox
from syncd.ages import UnsavedAges
from syncd.auth import may_open
from syncd.backend import Backend
from syncd.calls import BackendCalls
from syncd.cluster.port import Journal, Ownership, SoleOwner
from syncd.config import SyncdSettings
from syncd.core import effects as fx
from syncd.core.batch import WriteBatch
from syncd.core.budget import ByteBudget
from syncd.core.engine import SyncEngine, unsaved_count
from syncd.core.ids import ANONYMOUS, ClientId, ConnId, ProjectId, RowId, UserId
from syncd.core.inputs import (
    Delete,
    Flush,
    Insert,
    Mutation,
    Patch,
    RemoteChange,
    Reorder,
)
from syncd.core.journal import JournalEntry
from syncd.core.schema import SideTable
from syncd.errors import AccessRefused, UpstreamError
from syncd.inbound import (
    DeleteFrame,
    FlushFrame,
    HelloFrame,
    InsertFrame,
    MutationFrame,
    PatchFrame,
    ReorderFrame,
)
from syncd.metrics import Metrics
from syncd.records import Records
from syncd.registry import EditorRegistry
from syncd.room import EditRoom, RoomWait
from syncd.service import ServiceSessions, is_service
from syncd.sides import SideRows
from syncd.statedir import free_bytes
from syncd.timer import DeadlineTimer
from syncd.wire import CLOSE_NOT_FOUND, CLOSE_NOT_READING, CLOSE_RESTART, ChangeOp

log = logging.getLogger(__name__)


class ProjectHost:
    """The open projects: the engine, its timer, and the effects it emits.

    Args:
        settings: every setting, already validated.
        backend: the database, entered by the caller.
        outbox: the durable journal, entered by the caller.
        counters: the metrics the host counts.
        on_fatal: called when the daemon must stop because it can no longer keep its promises (the
            journal cannot be written); takes the reason.
    """

    def __init__(
        self,
        settings: SyncdSettings,
        backend: Backend,
        outbox: Outbox,
        counters: Metrics,
        on_fatal: Callable[[str], None],
    ) -> None:
        s = settings
        self._settings = settings
        self._backend = backend
        self._outbox = outbox
        self.journal: Journal = outbox
        """Where acknowledged edits go: the outbox, or the replicated journal in cluster mode."""
        self.ownership: Ownership = SoleOwner()
        """Whether this process acts for a project now; cluster mode puts its lease node here."""
        self._counters = counters
        self._on_fatal = on_fatal
        self.engine = SyncEngine(
            quiet=s.debounce.quiet,
            max_wait=s.debounce.max_wait,
            history_size=s.engine.history_size,
            history_bytes=s.engine.history_bytes,
            presence_interval=s.engine.presence_interval,
            presence_limit=s.engine.presence_limit,
            retry_initial_delay=s.writer.retry_initial_delay,
            retry_max_delay=s.writer.retry_max_delay,
        )
        self.editors = EditorRegistry(
            self.overflowed,
            self._close_if_idle,
            s.daemon.project_idle_timeout,
            ByteBudget.factory(s.gateway.resend_bytes, s.gateway.resend_window),
        )
        self.bus: Any = None  # the MqttBridge while MQTT is configured and entered
        self._epochs: dict[str, str] = {}
        self._last_append: asyncio.Future[None] | None = None
        room = EditRoom(lambda: free_bytes(s.daemon.state_dir), s.daemon.edit_reserve)
        self.room = RoomWait(self, room, self._apply, s.daemon.state_dir)
        self._timer = DeadlineTimer(self._on_timer)
        self._progress = asyncio.Event()
        self.ages = UnsavedAges(self.unsaved)
        self.service = ServiceSessions(self, s.writer.request_timeout)
        self.sides = SideRows()
        self.records: Records | None = None  # where side rows are read; set by the supervisor
        self.calls = BackendCalls(self, backend, settings, counters)

    # -- start and stop --------------------------------------------------------------------------------

    async def restore(self) -> None:
        """Replay the outbox: what was acknowledged but not saved becomes pending again."""
        entries = await self._outbox.load()
        if not entries:
            return
        self.engine.restore(entries)
        projects = {e.project_id for e in entries}
        log.info("replaying %d unsaved edits of %d projects from the outbox", len(entries), len(projects))
        now = self.now()
        for project_id in projects:
            self._open_project(project_id, now)
            self.ages.began(project_id, now)
        self.dispatch()

    async def drain(self, within: float) -> int:
        """Write every pending edit now; wait at most ``within`` seconds.

        Returns:
            How many edits are still unwritten (the outbox keeps them for the next start).
        """
        loop = asyncio.get_running_loop()
        self.engine.flush_all(loop.time())
        self.dispatch()
        deadline = loop.time() + within
        while self.engine.pending_count() > 0:
            self._progress.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
            except TimeoutError:
                break
        if self._last_append is not None and not self._last_append.done():
            await asyncio.wait({self._last_append}, timeout=max(0.0, deadline - loop.time()))
        return self.engine.pending_count()

    def cancel_tasks(self) -> None:
        """Stop the timer and every backend call still running."""
        self._timer.cancel()
        self.calls.cancel()
        self.room.cancel()

    # -- the gateway's port (EditorHandler) ------------------------------------------------------------

    async def open(self, conn: EditorConnection, hello: HelloFrame, user_id: str | None) -> None:
        """Check that the editor may open the project, then attach it to the engine.

        Raises:
            AccessRefused: the project does not exist, is not the editor's, or cannot be read now.
        """
        project_id = ProjectId(hello.project_id.lower())
        try:
            exists, owner = await self._backend.project_owner(project_id)
        except (UpstreamError, OSError) as exc:
            raise AccessRefused("unavailable", "the database cannot be reached; try again") from exc
        if not exists:
            raise AccessRefused("not_found", f"project {project_id} does not exist")
        if not may_open(owner, user_id, allow_anonymous=self._settings.allow_anonymous):
            if user_id is None:
                raise AccessRefused("unauthorized", "this project needs a token")
            raise AccessRefused("forbidden", "this project belongs to another user")
        client_id, user = ClientId(hello.client_id.lower()), UserId(user_id) if user_id else ANONYMOUS
        refused = self.engine.check_client(project_id, client_id, user)
        if refused is not None:
            raise AccessRefused(refused.code, refused.message)
        self.editors.join(conn, project_id)
        now = self.now()
        if project_id not in self.engine.open_projects():
            self._open_project(project_id, now)
        resume = (hello.resume.epoch, hello.resume.seq) if hello.resume else None
        self.engine.attach(ConnId(conn.conn_id), client_id, user, project_id, resume, now)
        self.dispatch()

    def receive(self, conn: EditorConnection, mutation: MutationFrame) -> None:
        """Feed an editor's validated mutation to the engine."""
        project_id = conn.project_id or ""
        if not self.ownership.acting(project_id):
            # Not applied, not acknowledged: the editor resends it to whoever owns the project next.
            conn.close(CLOSE_RESTART, "the project's owner cannot act now; reconnect")
            return
        self._receive(ConnId(conn.conn_id), project_id, (core_mutation(mutation),))

    def _receive(self, conn: ConnId, project_id: str, mutations: Sequence[Mutation]) -> None:
        now = self.now()
        if self.journal is self._outbox and not self.room.admits(now):
            self.room.hold(conn, project_id, mutations)
            return
        self._apply(conn, project_id, mutations, now)

    def _apply(self, conn: ConnId, project_id: str, mutations: Sequence[Mutation], now: float) -> None:
        fresh = self.ages.fresh(project_id)
        for mutation in mutations:
            self.engine.receive_mutation(conn, mutation, now)
        self.ages.edited(project_id, fresh, now)
        self._counters.mutations.inc(len(mutations))
        self.dispatch()

    # -- service sessions (syncd.service) --------------------------------------------------------------

    def attach_service(self, conn: ConnId, client_id: ClientId, project_id: ProjectId) -> None:
        """Open the project if needed and attach a service session to it; its welcome says it loaded."""
        now = self.now()
        if project_id not in self.engine.open_projects():
            self._open_project(project_id, now)
        self.engine.attach(conn, client_id, ANONYMOUS, project_id, None, now)
        self.dispatch()

    def receive_service(self, conn: ConnId, mutations: Sequence[Mutation]) -> None:
        """Feed a service session's mutations to the engine, all in one go."""
        self._receive(conn, conn.removeprefix("svc:"), mutations)

    def detach_service(self, conn: ConnId) -> None:
        """Forget a service session."""
        self.engine.detach(conn, self.now())
        self.dispatch()

    def closed(self, conn: EditorConnection) -> None:
        """Forget a connection; its project closes a while after its last editor left."""
        self.editors.leave(conn)
        self.room.drop(ConnId(conn.conn_id))
        self.engine.detach(ConnId(conn.conn_id), self.now())
        self.dispatch()

    def overflowed(self, conn: EditorConnection) -> None:
        """Replace a slow editor's dropped backlog with a snapshot, built when its writer gets to it."""
        conn.resend_later(lambda: self._resend(conn))

    def _resend(self, conn: EditorConnection) -> bytes | None:
        """The snapshot a slow editor is due, or None (and the connection closed) past its byte budget."""
        if self.editors.get(conn.conn_id) is not conn:
            return None  # gone meanwhile
        snapshot = self.engine.snapshot_for(ConnId(conn.conn_id))
        if snapshot is None:
            return None
        data = outbound.snapshot(snapshot, self.sides.lists(snapshot.project_id))
        if self.editors.may_resend(conn.conn_id, len(data), self.now()):
            return data
        g = self._settings.gateway
        conn.log.warning(
            "editor reads too slowly: over %d bytes of snapshots in %g s; closing",
            g.resend_bytes,
            g.resend_window,
        )
        conn.close(CLOSE_NOT_READING, "not reading")
        return None

    # -- the backend's change feed -----------------------------------------------------------------------

    def receive_remote(self, project_id: ProjectId, change: RemoteChange | None) -> None:
        """A change heard from the backend's feed, or None for "re-read this project"."""
        if project_id not in self.engine.open_projects():
            return
        if change is None:
            self.engine.request_reread(project_id)
        else:
            self.engine.receive_remote_change(project_id, change, self.now())
        self.dispatch()

    def side_changed(self, project_id: str, table: SideTable, op: ChangeOp, row: dict[str, Any]) -> None:
        """An export or audio file of a project changed: pass it to the project's editors, in seq order."""
        project_id = project_id.lower()
        change = self.sides.change(project_id, table, op, row)
        if change is not None:
            self.engine.receive_side_change(ProjectId(project_id), change, self.now())
            self.dispatch()

    def relay_event(self, project_id: str, topic: str, data: Any) -> None:
        """A notice from another service (MQTT): pass it to the project's editors, unchanged."""
        self.editors.send(project_id.lower(), outbound.event(topic, data))

    # -- what metrics and readiness read -----------------------------------------------------------------

    def unsaved(self, project_id: str) -> int:
        """Mutations of the project not in the database yet (pending or being written)."""
        return unsaved_count(self.engine, ProjectId(project_id))

    def pending_oldest_age(self) -> float:
        """Seconds since the oldest unsaved edit arrived (see :meth:`UnsavedAges.oldest`)."""
        return self.ages.oldest(self.now())

    def unsaved_age(self, project_id: str) -> float:
        """Seconds since the project's oldest unsaved edit arrived (0 when everything is saved)."""
        return self.ages.age(project_id, self.now())

    # -- projects -------------------------------------------------------------------------------------------

    def _open_project(self, project_id: ProjectId, now: float) -> None:
        """Open a project in the engine and start following its changes."""
        epoch = uuid.uuid4().hex[:16]
        self._epochs[project_id] = epoch
        self.engine.open_project(project_id, epoch, now)
        self.calls.spawn(self._backend.follow(project_id, self.receive_remote), f"syncd.follow.{project_id}")

    def _close_if_idle(self, project_id: str) -> None:
        if self.editors.has_editors(project_id):
            return
        if not self.service.release_idle(ProjectId(project_id)):
            self.editors.start_idle(project_id)  # a service call still uses it
            return
        if self.engine.close_project(ProjectId(project_id)):
            self._epochs.pop(project_id, None)
            self.sides.drop(project_id)
            self.calls.spawn(self._backend.unfollow(ProjectId(project_id)), f"syncd.unfollow.{project_id}")
            log.info("closed idle project %s", project_id)
            self.ownership.released(project_id)
        else:
            self.editors.start_idle(project_id)  # unsaved edits keep it open a while longer

    def adopt(self, project_id: str, entries: Sequence[JournalEntry]) -> None:
        """Open a project this instance has just taken: its journal entries replay into a new epoch.

        The project closes again (and its lease goes) once saved, unless an editor comes meanwhile.
        """
        pid = ProjectId(project_id)
        self.engine.restore(entries)
        now = self.now()
        if entries:
            self.ages.began(project_id, now)
        if pid not in self.engine.open_projects():
            self._open_project(pid, now)
        if not self.editors.has_editors(project_id):
            self.editors.start_idle(project_id)
        self.dispatch()

    def abandon(self, project_id: str, reason: str) -> None:
        """Let go of a project another instance owns now: close its editors with 1012 and write nothing.

        Its unsaved edits are dropped here; the replicated journal keeps them for the new owner.
        """
        self.editors.close_all(project_id, CLOSE_RESTART, reason)
        self.engine.close_project(ProjectId(project_id), abandon=True)
        self.ages.forget(project_id)
        if self._epochs.pop(project_id, None) is not None:
            self.calls.spawn(self._backend.unfollow(ProjectId(project_id)), f"syncd.unfollow.{project_id}")
        self._progress.set()

    # -- effects ---------------------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Act on everything the engine asked for, in order, then re-arm the timer."""
        for effect in self.engine.take_effects():
            self._act(effect)
        self._timer.arm(self.engine.next_deadline())

    def _on_timer(self) -> None:
        self.engine.handle_timer(self.now())
        self.dispatch()

    def _act(self, effect: fx.Effect) -> None:
        match effect:
            case fx.Append(entry):
                self._last_append = self.journal.append_nowait(entry)
            case fx.Ack():
                self._ack(effect)
            case fx.Change():
                self._broadcast(effect)
            case fx.CatchUp(conn, _, changes):
                self._catch_up(conn, changes)
            case fx.Snapshot():
                self._send_snapshot(effect)
            case fx.Welcome(conn) if is_service(conn):
                self.service.welcomed(conn)
            case fx.Welcome(conn, project_id, epoch, seq):
                self.editors.make_live(conn, project_id)
                self.editors.reply(conn, outbound.welcome(project_id, epoch, seq, conn))
            case fx.Saved(project_id, seq):
                frame = outbound.saved(seq)
                self.editors.send(project_id, outbound.encode(frame))
                if self.bus is not None:
                    self.bus.publish_saved(project_id, {**frame, "epoch": self._epochs.get(project_id)})
                self.service.saved(project_id, seq)
            case fx.Error(_, conn, mid, code, message) if conn is not None and is_service(conn):
                self.service.refused(conn, mid, code, message)
            case fx.Error(project_id, conn, mid, code, message):
                log.info(
                    "project %s: %s %s (mid %s): %s", project_id, code, conn or "all editors", mid, message
                )
                if conn is None:
                    self.editors.reply_all(project_id, outbound.error(code, message, mid))
                else:
                    self.editors.reply(conn, outbound.error(code, message, mid))
            case fx.Presence():
                self._presence(effect)
            case fx.LoadProject(project_id):
                self.calls.spawn(self.calls.load(project_id), f"syncd.load.{project_id}")
            case fx.RequestReread(project_id, token):
                self.calls.spawn(self.calls.reread(project_id, token), f"syncd.reread.{project_id}")
            case WriteBatch():
                self.calls.spawn(self.calls.write(effect), f"syncd.write.{effect.project_id}")
            case fx.RemoveJournal(project_id, mutation_ids):
                self.calls.spawn(self.journal.remove(project_id, mutation_ids), "syncd.outbox.remove")
            case fx.ProjectNotFound():
                self._not_found(effect)
            case fx.Disconnect(conn_id, code, reason):
                self.editors.close(conn_id, code, reason)
            case _:
                assert_never(effect)

    def _ack(self, ack: fx.Ack) -> None:
        """Send an ack once every journal append before it is durable (the outbox commits in order)."""
        barrier = self._last_append
        if barrier is None or barrier.done():
            self._send_ack(ack, barrier)
        else:
            barrier.add_done_callback(lambda fut: self._send_ack(ack, fut))

    def _send_ack(self, ack: fx.Ack, barrier: asyncio.Future[None] | None) -> None:
        if barrier is not None and (barrier.cancelled() or barrier.exception() is not None):
            # The journal could not be written: the edit is not durable, so it is not acknowledged.
            message = "the daemon could not store the edit"
            if is_service(ack.conn):
                self.service.refused(ack.conn, ack.mid, "internal", message)
            else:
                self.editors.reply(ack.conn, outbound.error("internal", message))
            self._on_fatal("the outbox could not be written")
            return
        if is_service(ack.conn):
            self.service.acked(ack.conn, ack.mid, ack.seq)
            return
        editor = self.editors.get(ack.conn)
        if editor is not None and not self.ownership.acting(editor.project_id or ""):
            # The lease lapsed or was lost since the edit was taken: no ack. The editor resends the
            # edit after reconnecting, and the owner then acknowledges it once (its journal has it).
            editor.close(CLOSE_RESTART, "the project's owner cannot act now; reconnect")
            return
        self.editors.reply(ack.conn, outbound.ack(ack.mid, ack.seq))

    def _presence(self, presence: fx.Presence) -> None:
        service = self.service.client_id  # the service session is nobody's editor: not listed
        people = tuple(e for e in presence.editors if e.client_id != service)
        hidden = len(presence.editors) - len(people)
        listed = outbound.presence(people, None if presence.count is None else presence.count - hidden)
        if presence.conn is None:
            self.editors.reply_all(presence.project_id, listed)
        else:
            self.editors.reply(presence.conn, listed)

    def _not_found(self, gone: fx.ProjectNotFound) -> None:
        self.sides.drop(gone.project_id)
        if gone.dropped:
            # Deleted on purpose (the API, the studio, another tool): nothing failed, the edits are moot.
            log.warning("project %s is gone: %d unsaved edits dropped", gone.project_id, len(gone.dropped))
        for conn_id in gone.conns:
            if is_service(conn_id):
                self.service.gone(conn_id)
            else:
                self.editors.close(conn_id, CLOSE_NOT_FOUND, "project not found")

    def _broadcast(self, change: fx.Change) -> None:
        frame = outbound.change(change)
        delivered = self.editors.send(change.project_id, outbound.encode(frame))
        self._counters.changes_out.inc(delivered)
        self._counters.changes_in.labels(change.origin).inc()
        if self.bus is not None:
            message = outbound.change_message(frame, self._epochs.get(change.project_id))
            self.bus.publish_change(change.project_id, message)

    def _catch_up(self, conn_id: ConnId, changes: tuple[fx.Change, ...]) -> None:
        conn = self.editors.get(conn_id)
        if conn is None:
            return
        for change in changes:
            if not conn.send(outbound.encode(outbound.change(change))):
                self.overflowed(conn)  # the snapshot stands in for the rest
                return

    def _send_snapshot(self, snapshot: fx.Snapshot) -> None:
        data = outbound.snapshot(snapshot, self.sides.lists(snapshot.project_id))
        if snapshot.conn is None:
            self.editors.send(snapshot.project_id, data)
            return
        conn = self.editors.get(snapshot.conn)
        if conn is not None:
            conn.send_now(data)

    def written(self, project_id: ProjectId) -> None:
        """A write of the project ended, either way: for :meth:`drain` and the unsaved age."""
        self.ages.written(project_id)
        self._progress.set()

    @staticmethod
    def now() -> float:
        """The loop's clock, the time the engine is given."""
        return asyncio.get_running_loop().time()


def core_mutation(m: MutationFrame) -> Patch | Insert | Delete | Reorder | Flush:
    """The engine's form of a validated mutation frame."""
    match m:
        case PatchFrame():
            return Patch(m.mid, m.table, RowId(m.id.lower()), m.set)
        case InsertFrame():
            return Insert(m.mid, m.table, m.row)
        case DeleteFrame():
            return Delete(m.mid, m.table, RowId(m.id.lower()))
        case ReorderFrame():
            return Reorder(m.mid, m.table, tuple(RowId(i.lower()) for i in m.ids))
        case FlushFrame():
            return Flush(m.mid)
        case _:
            assert_never(m)
