"""Daemon: connects the engine to the adapters, owns the loops, starts and stops everything in order.

Only the daemon calls the :class:`~syncd.core.engine.SyncEngine`. Adapters hand it their inputs by
calling its methods on the event loop; each call feeds the engine and acts on the effects before it
returns, with no ``await`` in between, so calls are serialized by construction (the loop runs one
at a time) without an extra queue hop on the hot path.

Startup, in dependency order: backend, outbox (and the replay of what it holds), engine and timer
loop, MQTT, then the editor gateway, so editors connect only once the state is live; then
``READY=1``. Shutdown reverses it: ``STOPPING=1``, stop accepting editors, write every pending edit
(bounded by ``shutdown_timeout``), close editors with 1012, leave MQTT and the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, assert_never

from syncd import inbound
from syncd.adapters.gateway import EditorConnection, EditorGateway, error_frame, fan_out
from syncd.adapters.local import LocalBackend
from syncd.adapters.outbox import Outbox
from syncd.adapters.supabase import SupabaseBackend
from syncd.adapters.systemd import SystemdNotifier
from syncd.auth import TokenVerifier, may_open
from syncd.backend import Backend, project_rows, write_ok
from syncd.config import SyncdSettings
from syncd.core.batch import WriteBatch, encode_batch
from syncd.core.effects import (
    Ack,
    Append,
    CatchUp,
    Change,
    Disconnect,
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
from syncd.core.ids import ClientId, ConnId, ProjectId, RowId, UserId
from syncd.core.inputs import Delete, Flush, Insert, Patch, RemoteChange, Reorder, WriteFailed, WriteResult
from syncd.errors import AccessRefused, SyncdError, UpstreamError, WriteError
from syncd.metrics import Metrics

log = logging.getLogger(__name__)

ANONYMOUS = UserId("")
"""How the core names a user without a token; editors see ``user_id: null``."""

EXIT_FORCED = 1
"""Exit code when a second signal cut the shutdown short."""


class Daemon:
    """One syncd process.

    Args:
        settings: every setting, already validated.
        backend: the database; the embedded store in the state directory when None.
        environ: where systemd's variables are read (the process environment by default).
    """

    def __init__(
        self,
        settings: SyncdSettings,
        *,
        backend: Backend | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        state_dir = settings.daemon.state_dir
        if backend is None:
            if settings.mode == "supabase":
                backend = SupabaseBackend(settings.supabase, settings.writer, self.receive_remote)
            else:
                backend = LocalBackend(state_dir / "store.db")
        self._backend: Backend = backend
        self._reread_after_load: set[str] = set()
        self._outbox = Outbox(state_dir / "outbox.db")
        s = settings
        self.engine = SyncEngine(
            quiet=s.debounce.quiet,
            max_wait=s.debounce.max_wait,
            history_size=s.engine.history_size,
            retry_initial_delay=s.writer.retry_initial_delay,
            retry_max_delay=s.writer.retry_max_delay,
        )
        self._verifier = TokenVerifier(
            jwt_secret=s.supabase.jwt_secret, jwks_url=s.auth.jwks_url, audience=s.auth.audience
        )
        self.gateway = EditorGateway(s.gateway, self, self._verifier)
        self._mqtt: Any = None
        self._notifier = SystemdNotifier(environ)
        self.metrics = Metrics(self)
        self._conns: dict[str, EditorConnection] = {}
        self._by_project: dict[str, dict[str, EditorConnection]] = {}
        # The welcomed ones: a connection still waiting for its project's load gets no project frame
        # before its welcome and snapshot (the load itself emits changes, e.g. of replayed edits).
        self._live: dict[str, dict[str, EditorConnection]] = {}
        self._epochs: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_append: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._armed: float | None = None  # the deadline the timer loop sleeps until (None: none)
        self._progress = asyncio.Event()
        self._stopping = asyncio.Event()
        self._signals = 0
        self._idle_close: dict[str, asyncio.TimerHandle] = {}
        self._unsaved_since: dict[str, float] = {}  # project -> loop time its unsaved run began
        self.ready = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return 0

    def request_stop(self) -> None:
        """Begin a graceful shutdown; a second request exits at once (the outbox keeps every ack)."""
        self._signals += 1
        if self._signals == 1:
            log.info("stopping: writing pending edits, then closing editors")
            self._stopping.set()
            return
        log.warning("second stop request: exiting now; unsaved edits stay in the outbox")
        logging.shutdown()
        os._exit(EXIT_FORCED)

    async def serve(self) -> None:
        """Start everything, serve until :meth:`request_stop`, then shut down in order."""
        self.settings.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._backend)  # type: ignore[arg-type]
            await stack.enter_async_context(self._outbox)
            await self._restore()
            timer = asyncio.create_task(self._timer_loop(), name="syncd.timer")
            stack.callback(timer.cancel)
            if self.settings.mqtt.url is not None:
                from syncd.adapters.mqtt import MqttBridge

                self._mqtt = MqttBridge(self.settings.mqtt, on_event=self._relay_event)
                await stack.enter_async_context(self._mqtt)
                mqtt_task = asyncio.create_task(self._mqtt.run(), name="syncd.mqtt")
                stack.callback(mqtt_task.cancel)
            await stack.enter_async_context(self.gateway)
            watchdog = asyncio.create_task(self._notifier.run_watchdog(), name="syncd.watchdog")
            stack.callback(watchdog.cancel)
            self._notifier.notify("READY=1", f"STATUS=serving on port {self.gateway.port}")
            self.ready.set()
            await self._stopping.wait()
            self._notifier.notify("STOPPING=1")
            await self._shutdown()

    async def _shutdown(self) -> None:
        self.gateway.stop_accepting()
        loop = asyncio.get_running_loop()
        self.engine.flush_all(loop.time())
        self._dispatch()
        deadline = loop.time() + self.settings.daemon.shutdown_timeout
        while self.engine.pending_count() > 0:
            self._progress.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
            except TimeoutError:
                log.error(
                    "shutdown timeout: %d edits not written yet; the outbox keeps them for the next start",
                    self.engine.pending_count(),
                )
                break
        if self._last_append is not None:
            with contextlib.suppress(Exception):
                await self._last_append
        await self.gateway.close()
        for task in list(self._tasks):
            task.cancel()
        log.info("stopped")

    async def _restore(self) -> None:
        """Replay the outbox: what was acknowledged but not saved becomes pending again."""
        entries = await self._outbox.load()
        if not entries:
            return
        self.engine.restore(entries)
        projects = {e.project_id for e in entries}
        log.info("replaying %d unsaved edits of %d projects from the outbox", len(entries), len(projects))
        now = asyncio.get_running_loop().time()
        for project_id in projects:
            self._open_project(project_id, now)
            self._unsaved_since[project_id] = now  # the real age is unknown; count from the restart
        self._dispatch()

    def _open_project(self, project_id: str, now: float) -> None:
        """Open a project in the engine and start following its changes."""
        self.engine.open_project(ProjectId(project_id), self._new_epoch(project_id), now)
        self._spawn(self._backend.follow(project_id), f"syncd.follow.{project_id}")

    def _new_epoch(self, project_id: str) -> str:
        epoch = uuid.uuid4().hex[:16]
        self._epochs[project_id] = epoch
        return epoch

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self._armed = self.engine.next_deadline()
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
                continue
            except TimeoutError:
                pass
            self.engine.handle_timer(loop.time())
            self._dispatch()

    # -- the gateway's port (EditorHandler) ---------------------------------------------------------

    async def open(self, conn: EditorConnection, hello: inbound.HelloFrame, user_id: str | None) -> None:
        """Check that the editor may open the project, then attach it to the engine."""
        project_id = hello.project_id.lower()
        try:
            exists, owner = await self._backend.project_owner(project_id)
        except (UpstreamError, OSError) as exc:
            raise AccessRefused("unavailable", "the database cannot be reached; try again") from exc
        if not exists:
            raise AccessRefused("not_found", f"project {project_id} does not exist")
        if not may_open(owner, user_id, allow_anonymous=self.settings.allow_anonymous):
            if user_id is None:
                raise AccessRefused("unauthorized", "this project needs a token")
            raise AccessRefused("forbidden", "this project belongs to another user")
        client_id, user = ClientId(hello.client_id.lower()), UserId(user_id) if user_id else ANONYMOUS
        refused = self.engine.check_client(ProjectId(project_id), client_id, user)
        if refused is not None:
            raise AccessRefused(refused.code, refused.message)
        self._cancel_idle_close(project_id)
        self._conns[conn.conn_id] = conn
        self._by_project.setdefault(project_id, {})[conn.conn_id] = conn
        now = asyncio.get_running_loop().time()
        if project_id not in self.engine.open_projects():
            self._open_project(project_id, now)
        resume = (hello.resume.epoch, hello.resume.seq) if hello.resume else None
        self.engine.attach(ConnId(conn.conn_id), client_id, user, ProjectId(project_id), resume, now)
        self._dispatch()

    def receive(self, conn: EditorConnection, mutation: inbound.MutationFrame) -> None:
        """Feed an editor's validated mutation to the engine."""
        now = asyncio.get_running_loop().time()
        project_id = conn.project_id or ""
        # An unsaved run only starts here (or in _restore), so an untracked project has nothing
        # unsaved; only a tracked one needs a look before the edit, in case its run ended unnoticed.
        # That makes one status read per edit instead of two.
        fresh = project_id not in self._unsaved_since or self._unsaved(project_id) == 0
        self.engine.receive_mutation(ConnId(conn.conn_id), _core_mutation(mutation), now)
        if fresh and self._unsaved(project_id) > 0:
            self._unsaved_since[project_id] = now
        self.metrics.mutations.inc()
        self._dispatch()

    def closed(self, conn: EditorConnection) -> None:
        """Forget a connection; close its project a while after its last editor left."""
        self._conns.pop(conn.conn_id, None)
        project_id = conn.project_id
        members = self._by_project.get(project_id or "")
        if members is not None:
            members.pop(conn.conn_id, None)
        self._live.get(project_id or "", {}).pop(conn.conn_id, None)
        self.engine.detach(ConnId(conn.conn_id), asyncio.get_running_loop().time())
        self._dispatch()
        if project_id is not None and not members:
            self._by_project.pop(project_id, None)
            self._live.pop(project_id, None)
            self._schedule_idle_close(project_id)

    def overflowed(self, conn: EditorConnection) -> None:
        """Replace a slow editor's dropped backlog with a fresh snapshot."""
        snapshot = self.engine.snapshot_for(ConnId(conn.conn_id))
        if snapshot is not None:
            conn.send_now(inbound.encode(self._snapshot_frame(snapshot)))

    def readiness(self) -> tuple[bool, str]:
        """Ready once the gateway serves and the backend is connected (and subscribed)."""
        if not self.ready.is_set():
            return False, "starting"
        if self._stopping.is_set():
            return False, "stopping"
        return self._backend.readiness()

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of :attr:`metrics`."""
        return self.metrics.render()

    # -- projects closing when idle ------------------------------------------------------------------

    def _schedule_idle_close(self, project_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._idle_close[project_id] = loop.call_later(
            self.settings.daemon.project_idle_timeout, self._close_if_idle, project_id
        )

    def _cancel_idle_close(self, project_id: str) -> None:
        handle = self._idle_close.pop(project_id, None)
        if handle is not None:
            handle.cancel()

    def _close_if_idle(self, project_id: str) -> None:
        self._idle_close.pop(project_id, None)
        if self._by_project.get(project_id):
            return
        if self.engine.close_project(ProjectId(project_id)):
            self._epochs.pop(project_id, None)
            self._spawn(self._backend.unfollow(project_id), f"syncd.unfollow.{project_id}")
            log.info("closed idle project %s", project_id)
        else:
            self._schedule_idle_close(project_id)

    # -- effects ---------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Act on everything the engine asked for, in order."""
        for effect in self.engine.take_effects():
            self._act(effect)
        # Wake the timer loop only when it must fire earlier than it planned to: waking it after
        # every edit costs a task switch each time. A deadline that moved later or went away just
        # makes it wake once for nothing.
        deadline = self.engine.next_deadline()
        if deadline is not None and (self._armed is None or deadline < self._armed):
            self._wake.set()

    def _act(self, effect: Effect) -> None:
        match effect:
            case Append(entry):
                self._last_append = self._outbox.append_nowait(entry)
            case Ack(conn, mid, seq):
                self._ack(conn, mid, seq)
            case Change():
                self._broadcast_change(effect)
            case CatchUp(conn, _, changes):
                target = self._conns.get(conn)
                if target is not None:
                    for change in changes:
                        if not target.send(inbound.encode(_change_frame(change))):
                            self.overflowed(target)  # the snapshot stands in for the rest
                            break
            case Snapshot():
                self._send_snapshot(effect)
            case Welcome(conn, project_id, epoch, seq):
                welcomed = self._conns.get(conn)
                if welcomed is not None:
                    self._live.setdefault(project_id, {})[conn] = welcomed
                self._to_conn(
                    conn,
                    {
                        "type": "welcome",
                        "protocol": inbound.PROTOCOL,
                        "project_id": project_id,
                        "epoch": epoch,
                        "seq": seq,
                        "session": conn,
                    },
                )
            case Saved(project_id, seq):
                frame = {"type": "saved", "seq": seq, "at": _now_iso()}
                self._to_project(project_id, inbound.encode(frame))
                if self._mqtt is not None:
                    self._mqtt.publish_saved(project_id, {**frame, "epoch": self._epochs.get(project_id)})
            case Error(project_id, conn, mid, code, message):
                data = error_frame(code, message, mid)
                if conn is None:
                    self._reply_to_project(project_id, data)
                else:
                    target = self._conns.get(conn)
                    if target is not None:
                        target.reply(data)
            case Presence(project_id, editors):
                frame = {
                    "type": "presence",
                    "editors": [{"client_id": e.client_id, "user_id": e.user_id or None} for e in editors],
                }
                self._reply_to_project(project_id, inbound.encode(frame))
            case LoadProject(project_id):
                self._spawn(self._load(project_id), f"syncd.load.{project_id}")
            case RequestReread(project_id, token):
                self._spawn(self._reread(project_id, token), f"syncd.reread.{project_id}")
            case WriteBatch():
                self._spawn(self._write(effect), f"syncd.write.{effect.project_id}")
            case RemoveJournal(project_id, mutation_ids):
                self._spawn(self._outbox.remove(project_id, mutation_ids), "syncd.outbox.remove")
            case ProjectNotFound(project_id, conns, dropped):
                if dropped:
                    log.error("project %s is gone: %d unsaved edits dropped", project_id, len(dropped))
                for conn_id in conns:
                    target = self._conns.get(conn_id)
                    if target is not None:
                        target.close(4404, "project not found")
            case Disconnect(conn_id, code, reason):
                target = self._conns.get(conn_id)
                if target is not None:
                    target.close(code, reason)
            case _:
                assert_never(effect)

    def _ack(self, conn: ConnId, mid: int, seq: int) -> None:
        data = inbound.encode({"type": "ack", "mid": mid, "seq": seq})
        barrier = self._last_append
        if barrier is None or barrier.done():
            self._send_ack(conn, data, barrier)
        else:
            barrier.add_done_callback(lambda fut: self._send_ack(conn, data, fut))

    def _send_ack(self, conn: ConnId, data: bytes, barrier: asyncio.Future[None] | None) -> None:
        target = self._conns.get(conn)
        if barrier is not None and (barrier.cancelled() or barrier.exception() is not None):
            # The journal could not be written: the edit is not durable, so it is not acknowledged.
            log.error("outbox append failed; stopping so that no unacknowledged edit is lost")
            if target is not None:
                target.reply(error_frame("internal", "the daemon could not store the edit"))
            self.request_stop()
            return
        if target is not None:
            target.reply(data)

    def _broadcast_change(self, change: Change) -> None:
        frame = _change_frame(change)
        data = inbound.encode(frame)
        members = self._live.get(change.project_id, {})
        delivered = fan_out(members.values(), data, self.overflowed)
        self.metrics.changes_out.inc(delivered)
        self.metrics.changes_in.labels(change.origin).inc()
        if self._mqtt is not None:
            message = {**frame, "epoch": self._epochs.get(change.project_id), "at": _now_iso()}
            message.pop("type")
            self._mqtt.publish_change(change.project_id, message)

    def _send_snapshot(self, snapshot: Snapshot) -> None:
        data = inbound.encode(self._snapshot_frame(snapshot))
        if snapshot.conn is None:
            self._to_project(snapshot.project_id, data)
            return
        target = self._conns.get(snapshot.conn)
        if target is not None:
            target.send_now(data)

    def _snapshot_frame(self, snapshot: Snapshot) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "epoch": snapshot.epoch,
            "seq": snapshot.seq,
            "project": dict(snapshot.project),
            "scenes": [dict(r) for r in snapshot.scenes],
            "clips": [dict(r) for r in snapshot.clips],
            "saved_seq": snapshot.saved_seq,
        }

    def _to_conn(self, conn: str, frame: dict[str, Any]) -> None:
        target = self._conns.get(conn)
        if target is not None:
            target.reply(inbound.encode(frame))

    def _to_project(self, project_id: str, data: bytes) -> None:
        fan_out(self._live.get(project_id, {}).values(), data, self.overflowed)

    def _reply_to_project(self, project_id: str, data: bytes) -> None:
        """Queue a frame that no snapshot replaces (presence, a project-wide error) on every editor."""
        for conn in self._live.get(project_id, {}).values():
            conn.reply(data)

    def _relay_event(self, project_id: str, topic: str, data: dict[str, Any]) -> None:
        """A notice from another service (MQTT): pass it to the project's editors, unchanged."""
        members = self._live.get(project_id.lower())
        if members:
            frame = {"type": "event", "topic": topic, "data": data}
            fan_out(members.values(), inbound.encode(frame), self.overflowed)

    # -- backend calls ---------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def receive_remote(self, project_id: str, change: RemoteChange | None) -> None:
        """A change heard from the backend's feed, or None for "re-read this project"."""
        if ProjectId(project_id) not in self.engine.open_projects():
            return
        if change is None:
            status = self.engine.status(ProjectId(project_id))
            if status is not None and not status.loaded:
                # Realtime listens before the first read came back: read again once it has.
                self._reread_after_load.add(project_id)
                return
            self.engine.request_reread(ProjectId(project_id))
        else:
            self.engine.receive_remote_change(
                ProjectId(project_id), change, asyncio.get_running_loop().time()
            )
        self._dispatch()

    async def _load(self, project_id: ProjectId) -> None:
        delay = self.settings.writer.retry_initial_delay
        while project_id in self.engine.open_projects():
            try:
                async with asyncio.timeout(self.settings.writer.request_timeout):
                    data = await self._backend.load(project_id)
                rows = project_rows(data)
            except (SyncdError, OSError, TimeoutError) as exc:
                # A failed load never stands in for the project: pending edits wait for a real one.
                log.warning("loading project %s failed (%s); retrying in %.1f s", project_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.writer.retry_max_delay)
                continue
            self.engine.receive_loaded(project_id, rows, asyncio.get_running_loop().time())
            if project_id in self._reread_after_load:
                self._reread_after_load.discard(project_id)
                self.engine.request_reread(project_id)
            self._dispatch()
            return

    async def _reread(self, project_id: ProjectId, token: int) -> None:
        try:
            async with asyncio.timeout(self.settings.writer.request_timeout):
                data = await self._backend.reread(project_id)
            rows = project_rows(data)
        except (SyncdError, OSError, TimeoutError) as exc:
            log.warning("re-reading project %s failed: %s", project_id, exc)
            return
        if project_id in self.engine.open_projects():
            self.engine.receive_reread(project_id, token, rows, asyncio.get_running_loop().time())
            self._dispatch()

    async def _write(self, batch: WriteBatch) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result: WriteResult
        try:
            async with asyncio.timeout(self.settings.writer.request_timeout):
                answer = await self._backend.apply(encode_batch(batch))
            result = write_ok(batch.batch_id, answer)
            self.metrics.flush_seconds.observe(loop.time() - started)
        except WriteError as exc:
            result = WriteFailed(batch.batch_id, exc.retryable, str(exc))
        except (TimeoutError, OSError, UpstreamError) as exc:
            result = WriteFailed(batch.batch_id, True, f"{type(exc).__name__}: {exc}")
        if isinstance(result, WriteFailed):
            self.metrics.flush_failures.labels("yes" if result.retryable else "no").inc()
            level = logging.WARNING if result.retryable else logging.ERROR
            log.log(level, "writing project %s failed: %s", batch.project_id, result.message)
        else:
            log.debug("wrote project %s: %d ops", batch.project_id, len(batch.ops))
        if batch.project_id in self.engine.open_projects():
            self.engine.receive_write_result(batch.project_id, result, loop.time())
            self._dispatch()
        if self._unsaved(batch.project_id) == 0:
            self._unsaved_since.pop(batch.project_id, None)
        self._progress.set()

    # -- what metrics read -------------------------------------------------------------------------------

    @property
    def editor_count(self) -> int:
        """Connected editors."""
        return len(self._conns)

    @property
    def mqtt_connected(self) -> bool | None:
        """Whether the MQTT bridge is connected (None: MQTT is off)."""
        return None if self._mqtt is None else bool(self._mqtt.connected)

    def outbox_depth(self) -> int:
        """Entries in the durable journal."""
        return self._outbox.depth()

    @property
    def realtime_connected(self) -> bool | None:
        """Whether the Realtime socket is connected (None: local mode, which has no change feed)."""
        return self._backend.feed_connected()

    def pending_oldest_age(self) -> float:
        """Seconds since the oldest unsaved edit arrived (0 when everything is saved).

        Tracked per project from the edit that ended a fully saved state, so while a project is never
        fully saved (continuous editing across flushes) this is an upper bound, never an underestimate.
        """
        for project_id in [p for p in self._unsaved_since if self._unsaved(p) == 0]:
            del self._unsaved_since[project_id]
        if not self._unsaved_since:
            return 0.0
        return max(0.0, asyncio.get_running_loop().time() - min(self._unsaved_since.values()))

    def _unsaved(self, project_id: str) -> int:
        status = self.engine.status(ProjectId(project_id))
        return 0 if status is None else status.pending + status.in_flight_mutations


def _core_mutation(m: inbound.MutationFrame) -> Patch | Insert | Delete | Reorder | Flush:
    match m:
        case inbound.PatchFrame():
            return Patch(m.mid, m.table, RowId(m.id.lower()), m.set)
        case inbound.InsertFrame():
            return Insert(m.mid, m.table, m.row)
        case inbound.DeleteFrame():
            return Delete(m.mid, m.table, RowId(m.id.lower()))
        case inbound.ReorderFrame():
            return Reorder(m.mid, m.table, tuple(RowId(i.lower()) for i in m.ids))
        case inbound.FlushFrame():
            return Flush(m.mid)
        case _:
            assert_never(m)


def _change_frame(change: Change) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "change", "seq": change.seq, "table": change.table, "op": change.op}
    frame["id"] = change.id
    if change.op == "insert":
        frame["row"] = dict(change.row or {})
    elif change.op == "update":
        frame["set"] = dict(change.set or {})
    frame["origin"] = change.origin
    frame["client_id"] = change.client_id
    frame["mid"] = change.mid
    return frame


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
