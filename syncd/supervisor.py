"""Supervisor: starts and stops one syncd process in order, and turns signals into a graceful stop.

Start-up, in dependency order: the state directory's lock, the backend, the outbox (and the replay of
what it holds), MQTT, then the editor gateway, so editors connect only once the state is live; then
``READY=1``. Shutdown reverses it: ``STOPPING=1``, stop taking editors and edits, write every pending
edit (bounded by ``shutdown_timeout``), close editors with 1012, leave MQTT and the backend.

Signals only set flags (as uvicorn does): the first asks for the graceful stop, a second one cuts the
writing short. Nothing here ends the process; :meth:`Supervisor.run` returns its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections.abc import Coroutine, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from syncd.adapters.gateway import EditorGateway, EditorHandler
from syncd.adapters.outbox import Outbox
from syncd.adapters.systemd import SystemdNotifier
from syncd.api import MAX_BODY_BYTES, HttpApi, build_api
from syncd.auth import TokenVerifier, editor_jwks_url, editor_jwt_secret
from syncd.backend import Backend, open_backend
from syncd.config import SyncdSettings
from syncd.core.engine import SyncEngine
from syncd.errors import ConfigError, JournalError, StartupError, SyncdError
from syncd.host import ProjectHost
from syncd.inspector import Inspector
from syncd.metrics import Metrics
from syncd.statedir import StateDir, free_bytes
from syncd.storage import LocalFiles

if TYPE_CHECKING:
    from syncd.cluster.node import ClusterNode

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
"""Exit code when the daemon could not start, could not go on, or was told to stop at once."""
EXIT_CONFIG = 78
"""Exit code of a bad setting (sysexits.h EX_CONFIG); the systemd unit does not restart after it."""

_STATE_CHECK_INTERVAL = 1.0  # seconds between checks that the state directory is still there


class Supervisor:
    """One syncd process.

    Args:
        settings: every setting, already validated.
        backend: the database; the one the settings name when None.
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
        self._backend: Backend = backend if backend is not None else open_backend(settings)
        self._state = StateDir(state_dir)
        self._outbox = Outbox(
            state_dir / "outbox.db",
            commit_window=settings.daemon.commit_window,
            removal_delay=settings.daemon.removal_delay,
        )
        self.metrics = Metrics(self)
        self.host = ProjectHost(settings, self._backend, self._outbox, self.metrics, self.fail)
        self.cluster: ClusterNode | None = None
        handler: EditorHandler = self.host
        if settings.cluster.enabled:
            from syncd.cluster.node import ClusterNode  # imports nats-py: only in cluster mode

            self.cluster = ClusterNode(settings, self.host, self._backend)
            handler = self.cluster.router
        verifier = TokenVerifier(
            jwt_secret=editor_jwt_secret(settings),
            jwks_url=editor_jwks_url(settings),
            audience=settings.auth.audience,
        )
        self._verifier = verifier
        self.api: HttpApi | None = None
        self.files: LocalFiles | None = None
        self.gateway = EditorGateway(
            settings.gateway, handler, verifier, self, routes=self._add_api, max_body_bytes=MAX_BODY_BYTES
        )
        self.inspector = Inspector(
            backend=self._backend,
            engine=self.host.engine,
            editors=lambda: self.gateway.connections,
            unsaved_age=self.host.unsaved_age,
            verifier=verifier,
            local=settings.mode == "local",
            allow_anonymous=settings.allow_anonymous,
        )
        self._notifier = SystemdNotifier(environ)
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._signals = 0
        self._starting: asyncio.Task[Any] | None = None
        self._exit_code = EXIT_OK
        self.ready = asyncio.Event()

    # -- stopping -------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful stop; a second request stops writing pending edits (the outbox keeps them)."""
        self._signals += 1
        if self._signals == 1:
            self._stopping.set()
            if self._starting is not None:
                # Start-up waits on outside systems (NATS, the database) for as long as they are away.
                log.info("stopping before start-up finished")
                self._starting.cancel()
                return
            log.info("stopping: writing pending edits, then closing editors")
            return
        if not self._forced.is_set():
            log.warning("second stop request: stopping now; unsaved edits stay in the outbox")
            self._exit_code = EXIT_FAILED
            self._forced.set()

    def fail(self, reason: str) -> None:
        """Stop because the daemon can no longer keep its promises; the exit code says it failed."""
        log.error("%s; stopping so that no acknowledged edit is lost", reason)
        self._exit_code = EXIT_FAILED
        self._signals = max(self._signals, 1)
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stopping.is_set()

    # -- running --------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM, SIGINT or SIGHUP (or a fatal error); return the exit code.

        The signal handlers stay installed after this returns: a late second signal must not kill the
        process while it exits. They only act while the loop that installed them runs.
        """
        loop = asyncio.get_running_loop()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(self.request_stop)

        # SIGHUP too: closing the terminal that runs `syncd run` would otherwise end the process on
        # the spot, leaving its editors without a 1012 and its pending edits unsaved until a restart.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        return await self.serve()

    async def serve(self) -> int:
        """Start everything, serve until a stop is asked for, then shut down in order."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                if not await self._started(stack):
                    return self._exit_code
                self._notifier.notify("READY=1", f"STATUS=serving on port {self.gateway.port}")
                self.ready.set()
                await self._stopping.wait()
                self._notifier.notify("STOPPING=1")
                await self._shutdown()
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return EXIT_CONFIG if isinstance(exc.__cause__, ConfigError) else EXIT_FAILED
        return self._exit_code

    async def _started(self, stack: contextlib.AsyncExitStack) -> bool:
        """Run :meth:`_start`; whether it finished, rather than being cut short by a stop request.

        What start-up entered in ``stack`` is left for the caller's stack to close, in this task.
        """
        task = asyncio.current_task()
        assert task is not None
        self._starting = task
        try:
            await self._start(stack)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            task.uncancel()
            return False
        finally:
            self._starting = None
        return True

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        try:
            stack.enter_context(self._state)
            await stack.enter_async_context(self._backend)
            forwarder = None if self.cluster is None else self.cluster.calls
            self.api, self.files = build_api(
                self.settings,
                self.host,
                self._backend,
                self._verifier,
                lambda: self.gateway.draining,
                forwarder,
            )
            if self.cluster is not None:
                self.cluster.calls.runner = self.api.run_relayed
                # The journal is replayed per project, by the instance that takes it.
                await stack.enter_async_context(self.cluster)
            else:
                await stack.enter_async_context(self._outbox)
                await self.host.restore()
        except (OSError, sqlite3.Error, SyncdError) as exc:
            raise StartupError(_describe(exc)) from exc
        stack.callback(self.host.cancel_tasks)
        if self.settings.mqtt.url is not None:
            from syncd.adapters.mqtt import MqttBridge

            bridge = MqttBridge(self.settings.mqtt, on_event=self.host.relay_event)
            await stack.enter_async_context(bridge)
            self.host.bus = bridge
            self._spawn(stack, bridge.run(), "syncd.mqtt")
        try:
            await stack.enter_async_context(self.gateway)
        except OSError as exc:
            where = f"{self.settings.gateway.host}:{self.settings.gateway.port}"
            raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        if self.files is not None:
            self.files.base_url = self.settings.gateway.files_url(self.gateway.port)
        self._spawn(stack, self._notifier.run_watchdog(), "syncd.watchdog")
        self._spawn(stack, self._watch_state_dir(), "syncd.statedir")

    def _add_api(self, app: web.Application) -> None:
        """Mount the HTTP API (made in :meth:`_start`, once the backend is in) and the inspector."""
        if self.api is not None:
            self.api.add_routes(app)
        self.inspector.add_routes(app)

    @staticmethod
    def _spawn(stack: contextlib.AsyncExitStack, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        stack.callback(task.cancel)

    async def _watch_state_dir(self) -> None:
        """Stop when the state directory is removed or replaced: new acks would be lost with it."""
        while True:
            await asyncio.sleep(_STATE_CHECK_INTERVAL)
            problem = self._state.problem()
            if problem is not None:
                self.fail(problem)
                return

    async def _shutdown(self) -> None:
        self.gateway.stop_accepting()
        drain = asyncio.create_task(self.host.drain(self.settings.daemon.shutdown_timeout))
        forced = asyncio.create_task(self._forced.wait())
        await asyncio.wait({drain, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if drain.done():
            unwritten = drain.result()
            if unwritten:
                log.error(
                    "shutdown timeout: %d edits not written yet; the outbox keeps them for the next start",
                    unwritten,
                )
        else:
            drain.cancel()
            log.warning("%d edits not written; the outbox keeps them", self.host.engine.pending_count())
        await self.gateway.close()
        log.info("stopped")

    # -- what the gateway and metrics read ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """Ready once the gateway serves and the backend is connected (and subscribed)."""
        if not self.ready.is_set():
            return False, "starting"
        if self._stopping.is_set():
            return False, "stopping"
        if self.cluster is not None and (why := self.cluster.readiness()) is not None:
            return why
        return self._backend.readiness()

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of :attr:`metrics`."""
        return self.metrics.render()

    @property
    def engine(self) -> SyncEngine:
        """What the metrics read of the open projects."""
        return self.host.engine

    @property
    def editor_count(self) -> int:
        """Connected editors."""
        return len(self.host.editors)

    @property
    def mqtt_connected(self) -> bool | None:
        """Whether the MQTT bridge is connected (None: MQTT is off)."""
        return None if self.host.bus is None else bool(self.host.bus.connected)

    @property
    def realtime_connected(self) -> bool | None:
        """Whether the Realtime socket is connected (None: local mode, which has no change feed)."""
        return self._backend.feed_connected()

    def outbox_depth(self) -> int:
        """Entries in the durable journal."""
        return self._outbox.depth() if self.cluster is None else self.cluster.depth()

    def pending_oldest_age(self) -> float:
        """Seconds since the oldest unsaved edit arrived (see :meth:`ProjectHost.pending_oldest_age`)."""
        return self.host.pending_oldest_age()

    def edits_waiting_for_room(self) -> int:
        """Editors' edits held until the state directory has room (see syncd.room)."""
        return self.host.room.count

    def state_dir_free_bytes(self) -> float:
        """Free bytes on the state directory's file system, for ``/metrics``; NaN if unknown."""
        return free_bytes(self.settings.daemon.state_dir)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, JournalError):
        # Acknowledged edits are never skipped silently: the operator decides what to do with the file.
        return f"{exc}; the daemon will not start without it (move it aside to start anew)"
    if isinstance(exc, sqlite3.DatabaseError):
        return f"a database file in the state directory is unreadable ({exc}); move it aside or restore it"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)
