"""Service sessions: writes of the HTTP API that go through the engine like an editor's mutations.

A service (the renderer, a tool) that changes a project, its scenes or its clips gets no WebSocket:
the daemon attaches one engine session per project for all of them, under a client id of its own
(new at every start, so its mids never collide with those the database already recorded). Its
mutations are then ordered with the editors' edits, reach every editor at once as ``change`` frames
(origin ``editor``, with the service's client id), are journaled before they are acknowledged, and are
saved with the debounce, or at once when the caller asks.

The session is a connection id starting with :data:`SERVICE_PREFIX`; the host routes the effects
addressed to it here and leaves it out of ``presence``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.core.effects import Snapshot
from syncd.core.ids import ClientId, ConnId, ProjectId
from syncd.core.inputs import Flush, Mutation
from syncd.errors import EditRejected
from syncd.wire import ErrorCode

if TYPE_CHECKING:
    from syncd.host import ProjectHost

log = logging.getLogger(__name__)

SERVICE_PREFIX = "svc:"
"""Connection ids of service sessions: ``svc:{project_id}``."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a service write did.

    Attributes:
        seq: the seq of its last change, or the project's seq when it changed nothing.
        saved: whether its changes are known to be in the database.
        view: the project's live view right after it.
    """

    seq: int
    saved: bool
    view: Snapshot


def is_service(conn: str) -> bool:
    """Whether a connection id names a service session."""
    return conn.startswith(SERVICE_PREFIX)


class ServiceSessions:
    """The service sessions of the open projects, and the calls waiting on them.

    Args:
        host: the project host whose engine takes the mutations.
        timeout: seconds a call waits for the project to load, or for its save.
    """

    def __init__(self, host: ProjectHost, timeout: float) -> None:
        self._host = host
        self._timeout = timeout
        self.client_id = ClientId(str(uuid.uuid4()))
        self._mids = itertools.count(1)
        self._welcomed: dict[ConnId, asyncio.Future[None]] = {}
        self._answers: dict[tuple[ConnId, int], asyncio.Future[int]] = {}
        self._saves: dict[ProjectId, list[tuple[int, asyncio.Future[None]]]] = {}
        self._busy: dict[ProjectId, int] = {}

    @staticmethod
    def conn_of(project_id: ProjectId) -> ConnId:
        """The connection id of a project's service session."""
        return ConnId(f"{SERVICE_PREFIX}{project_id}")

    # -- what the HTTP API calls ----------------------------------------------------------------------

    async def view(self, project_id: ProjectId) -> Snapshot:
        """The project's live view (unsaved edits included), opening the project if it is not open.

        Raises:
            EditRejected: ``not_found`` when the project does not exist; ``unavailable`` when it could
                not be loaded in time.
        """
        self._busy[project_id] = self._busy.get(project_id, 0) + 1
        try:
            return (await self._attached_view(project_id))[1]
        finally:
            self._release(project_id)

    async def write(
        self,
        project_id: ProjectId,
        build: Callable[[Snapshot], Sequence[Mutation]],
        *,
        save: bool,
    ) -> Written:
        """Apply the mutations that ``build`` makes from the live view, all at once, in order.

        ``build`` runs right before the mutations go to the engine, with nothing in between, so what
        it read (the last clip's position, the scene list) is still true when they apply. It receives
        mutations with ``mid`` 0; each gets the session's next mid here.

        Returns:
            The seq of the last change (or the project's seq when nothing changed), whether the
            changes are known to be in the database (always False unless ``save``), and the view after.

        Raises:
            EditRejected: what the engine refused (the first refusal), or what ``build`` raised.
        """
        self._busy[project_id] = self._busy.get(project_id, 0) + 1
        try:
            conn, snapshot = await self._attached_view(project_id)
            mutations = [_with_mid(m, next(self._mids)) for m in build(snapshot)]
            if save:
                mutations.append(Flush(next(self._mids)))
            loop = asyncio.get_running_loop()
            waits = [loop.create_future() for _ in mutations]
            for mutation, future in zip(mutations, waits, strict=True):
                self._answers[(conn, mutation.mid)] = future
            self._host.receive_service(conn, mutations)
            seq = snapshot.seq
            try:
                for future in waits:
                    seq = max(seq, await future)
            finally:
                for mutation in mutations:
                    self._answers.pop((conn, mutation.mid), None)
            saved = save and await self._saved(project_id, seq)
            after = self._host.engine.snapshot_for(conn)
            return Written(seq, saved, after if after is not None else snapshot)
        finally:
            self._release(project_id)

    # -- effects the host routes here -----------------------------------------------------------------

    def welcomed(self, conn: ConnId) -> None:
        """The engine let the session in: the project is loaded."""
        future = self._welcomed.get(conn)
        if future is not None and not future.done():
            future.set_result(None)

    def acked(self, conn: ConnId, mid: int, seq: int) -> None:
        """A mutation of the session is journaled and applied at ``seq``."""
        future = self._answers.get((conn, mid))
        if future is not None and not future.done():
            future.set_result(seq)

    def refused(self, conn: ConnId, mid: int | None, code: ErrorCode, message: str) -> None:
        """The engine refused a mutation of the session (or, with no mid, the project failed)."""
        for (owner, waiting_mid), future in list(self._answers.items()):
            if owner == conn and (mid is None or waiting_mid == mid) and not future.done():
                future.set_exception(EditRejected(code, message))

    def saved(self, project_id: ProjectId, seq: int) -> None:
        """Every change of the project up to ``seq`` is in the database."""
        waiting = self._saves.get(project_id)
        if not waiting:
            return
        for target, future in list(waiting):
            if target <= seq:
                waiting.remove((target, future))
                if not future.done():
                    future.set_result(None)

    def gone(self, conn: ConnId) -> None:
        """The engine forgot the session: its project does not exist (any more)."""
        future = self._welcomed.pop(conn, None)
        error = EditRejected("not_found", f"project {conn.removeprefix(SERVICE_PREFIX)} does not exist")
        if future is not None and not future.done():
            future.set_exception(error)
        self.refused(conn, None, "not_found", error.message)

    def release_idle(self, project_id: ProjectId) -> bool:
        """Detach the session of a project its editors left; False while a call still uses it."""
        if self._busy.get(project_id):
            return False
        conn = self.conn_of(project_id)
        if self._welcomed.pop(conn, None) is not None:
            self._host.detach_service(conn)
        return True

    # -- inside ---------------------------------------------------------------------------------------

    async def _attached_view(self, project_id: ProjectId) -> tuple[ConnId, Snapshot]:
        """The session of the project (attached now if need be) and its live view."""
        if not self._host.ownership.acting(project_id):
            # Cluster mode: calls on projects of another instance go to it (syncd.cluster.calls); this
            # one raced with an owner change.
            raise EditRejected("unavailable", f"project {project_id} is served by another syncd instance")
        conn = await self._attach(project_id)
        snapshot = self._host.engine.snapshot_for(conn)
        if snapshot is None:
            raise EditRejected("unavailable", f"project {project_id} is not loaded; try again")
        return conn, snapshot

    async def _attach(self, project_id: ProjectId) -> ConnId:
        conn = self.conn_of(project_id)
        future = self._welcomed.get(conn)
        if future is None or (future.done() and future.exception() is not None):
            future = asyncio.get_running_loop().create_future()
            self._welcomed[conn] = future
            self._host.attach_service(conn, self.client_id, project_id)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(future)
        except TimeoutError:
            raise EditRejected(
                "unavailable", f"project {project_id} did not load in time; try again"
            ) from None
        return conn

    async def _saved(self, project_id: ProjectId, seq: int) -> bool:
        progress = self._host.engine.status(project_id)
        if progress is None or progress.saved_seq >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._saves.setdefault(project_id, []).append((seq, future))
        try:
            async with asyncio.timeout(self._timeout):
                await future
        except TimeoutError:
            log.warning("project %s: not saved within %.0f s; the save goes on", project_id, self._timeout)
            return False
        finally:
            waiting = self._saves.get(project_id, [])
            if (seq, future) in waiting:
                waiting.remove((seq, future))
        return True

    def _release(self, project_id: ProjectId) -> None:
        left = self._busy.get(project_id, 1) - 1
        if left:
            self._busy[project_id] = left
            return
        self._busy.pop(project_id, None)
        if not self._host.editors.has_editors(project_id):
            self._host.editors.start_idle(project_id)


def _with_mid(mutation: Mutation, mid: int) -> Mutation:
    return dataclasses.replace(mutation, mid=mid)
