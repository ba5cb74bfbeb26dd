"""BackendCalls: the host's calls to the database, run as tasks whose results come back as engine inputs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from syncd.backend import Backend
from syncd.config import SyncdSettings
from syncd.core.backoff import Backoff
from syncd.core.batch import DeleteRow, WriteBatch
from syncd.core.ids import ProjectId
from syncd.core.inputs import WriteFailed, WriteResult
from syncd.core.schema import SIDE_TABLES, SideTable
from syncd.errors import StaleOwner, SyncdError, UpstreamError, WriteError
from syncd.metrics import Metrics

if TYPE_CHECKING:
    from syncd.host import ProjectHost

log = logging.getLogger(__name__)


class BackendCalls:
    """Loads, re-reads and writes of the open projects, each in a task the host can cancel.

    Args:
        host: where results go (its engine, then its effects).
        backend: the database.
        settings: timeouts and retry delays.
        counters: the metrics of writes.
    """

    def __init__(
        self, host: ProjectHost, backend: Backend, settings: SyncdSettings, counters: Metrics
    ) -> None:
        self._host = host
        self._backend = backend
        self._settings = settings
        self._counters = counters
        self._tasks: set[asyncio.Task[None]] = set()

    def cancel(self) -> None:
        """Cancel every call still running."""
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a named task; a failure is logged, never lost."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def load(self, project_id: ProjectId) -> None:
        """Read a project for its first load, retrying with backoff while it stays open."""
        w = self._settings.writer
        backoff = Backoff(w.retry_initial_delay, w.retry_max_delay, random.random)
        while project_id in self._host.engine.open_projects():
            try:
                async with asyncio.timeout(w.request_timeout):
                    rows = await self._backend.load(project_id)
                    sides = await self._read_sides(project_id)
            except (SyncdError, OSError, TimeoutError) as exc:
                # A failed load never stands in for the project: pending edits wait for a real one.
                delay = backoff.next_delay()
                log.warning("loading project %s failed (%s); retrying in %.1f s", project_id, exc, delay)
                await asyncio.sleep(delay)
                continue
            self._host.sides.load(project_id, sides)
            self._host.engine.receive_loaded(project_id, rows, self._host.now())
            self._host.dispatch()
            return

    def reread_open(self) -> None:
        """Read every open project again: a write outside the editors' edits changed rows of theirs
        where no change feed reports it (local mode)."""
        for project_id in list(self._host.engine.open_projects()):
            self._host.receive_remote(project_id, None)

    async def reread(self, project_id: ProjectId, token: int) -> None:
        """Read an open project again (after a subscribe, or anti-entropy); a failure waits for the next."""
        try:
            async with asyncio.timeout(self._settings.writer.request_timeout):
                rows = await self._backend.load(project_id)
                sides = await self._read_sides(project_id)
        except (SyncdError, OSError, TimeoutError) as exc:
            log.warning("re-reading project %s failed: %s", project_id, exc)
            return
        if project_id in self._host.engine.open_projects():
            for change in self._host.sides.replace(project_id, sides):
                self._host.engine.receive_side_change(project_id, change, self._host.now())
            self._host.engine.receive_reread(project_id, token, rows, self._host.now())
            self._host.dispatch()

    async def write(self, batch: WriteBatch) -> None:
        """Apply one batch (with the owner's fence in cluster mode) and hand the result to the engine."""
        started = self._host.now()
        result: WriteResult
        fence = self._host.ownership.fence(batch.project_id)
        if fence is not None:
            batch = dataclasses.replace(batch, fence=fence)
        try:
            async with asyncio.timeout(self._settings.writer.request_timeout):
                result = await self._backend.apply(batch)
            self._counters.flush_seconds.observe(self._host.now() - started)
        except StaleOwner as exc:
            log.warning("project %s: %s", batch.project_id, exc)
            self._host.ownership.stale(batch.project_id)
            return
        except WriteError as exc:
            result = WriteFailed(batch.batch_id, exc.retryable, str(exc))
        except (TimeoutError, OSError, UpstreamError) as exc:
            result = WriteFailed(batch.batch_id, True, f"{type(exc).__name__}: {exc}")
        if isinstance(result, WriteFailed):
            self._counters.flush_failures.labels("yes" if result.retryable else "no").inc()
            level = logging.WARNING if result.retryable else logging.ERROR
            log.log(level, "writing project %s failed: %s", batch.project_id, result.message)
        else:
            log.info("saved project %s: %d rows", batch.project_id, len(batch.ops))
        if batch.project_id in self._host.engine.open_projects():
            self._host.engine.receive_write_result(batch.project_id, result, self._host.now())
            self._host.dispatch()
            if (
                not isinstance(result, WriteFailed)
                and self._backend.name == "local"
                and _deletes_scenes(batch)
            ):
                # The store took the deleted scenes from their audio files (`on delete set null`),
                # which no change feed reports in local mode (Supabase's does): a re-read tells the editors.
                self._host.receive_remote(batch.project_id, None)
        self._host.written(batch.project_id)

    async def _read_sides(self, project_id: ProjectId) -> dict[SideTable, list[dict[str, Any]]]:
        """A project's exports and audio files (none without :attr:`records`)."""
        if self._host.records is None:
            return {}
        return {
            table: await self._host.records.select(table, {"project_id": project_id}) for table in SIDE_TABLES
        }


def _deletes_scenes(batch: WriteBatch) -> bool:
    return any(isinstance(op, DeleteRow) and op.table == "scenes" for op in batch.ops)
