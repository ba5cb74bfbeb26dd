"""The port between the daemon and a database, and the one place that picks the backend.

The daemon sees a backend only through :class:`Backend`: typed reads and writes in the core's terms
(:class:`~syncd.core.inputs.ProjectRows`, :class:`~syncd.core.batch.WriteBatch`,
:class:`~syncd.core.inputs.WriteOk`). The JSON documents that cross the wire stay inside the
adapters: a write batch travels as :func:`syncd.core.batch.encode_batch` makes it and is answered
``{"rows": [{"table", "row"}], "missing": [{"table", "id"}]}`` (what the ``syncd_apply`` Postgres
function returns); a read is ``{"project": row | None, "scenes": [...], "clips": [...], "applied":
{client_id: mid}}`` (``applied``: the highest mid per client that the database recorded for the
project; may be left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from syncd.core.batch import WriteBatch, encode_batch
from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import ProjectRows, RemoteChange, WriteOk
from syncd.core.schema import table_named
from syncd.errors import UpstreamError

if TYPE_CHECKING:
    from syncd.adapters.local import LocalBackend
    from syncd.adapters.supabase import SupabaseBackend
    from syncd.config import SyncdSettings

RemoteSink = Callable[[ProjectId, RemoteChange | None], None]
"""Where a backend reports what it hears: a change of a project, or None to ask for a re-read of it."""


class Backend(Protocol):
    """What the daemon needs from a database: an async context manager that is ready on entry."""

    name: str

    async def __aenter__(self) -> Self:
        """Connect; return once reads and writes can be served."""

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop following every project and disconnect."""

    async def load(self, project_id: ProjectId) -> ProjectRows:
        """Read a project and its scenes and clips (the first read, and every re-read).

        Raises:
            UpstreamError: the database cannot be read.
        """

    async def apply(self, batch: WriteBatch) -> WriteOk:
        """Apply one write batch in one transaction.

        Raises:
            WriteError: with ``retryable`` set when the same batch may succeed later.
        """

    async def project_owner(self, project_id: ProjectId) -> tuple[bool, str | None]:
        """Whether a project exists, and its ``user_id``.

        Raises:
            UpstreamError: the database cannot be read.
        """

    async def follow(self, project_id: ProjectId, sink: RemoteSink) -> None:
        """Start sending changes of an open project to ``sink`` (a backend without a feed does nothing)."""

    async def unfollow(self, project_id: ProjectId) -> None:
        """Stop hearing changes of a project."""

    def readiness(self) -> tuple[bool, str]:
        """Whether the backend is connected (and subscribed), and why not."""

    def feed_connected(self) -> bool | None:
        """Whether the change feed is connected; None when the backend has none."""


class DocumentBackend:
    """The engine's side of a backend that reads and writes the JSON documents of the module docstring.

    Subclasses implement :meth:`read_project` and :meth:`apply_encoded`; the typed :meth:`load` and
    :meth:`apply` of the :class:`Backend` port come from here, so the conversion lives in one place.
    """

    async def read_project(self, project_id: str) -> dict[str, Any]:
        """Read a project with its scenes and clips: ``{"project": row or None, "scenes", "clips"}``."""
        raise NotImplementedError

    async def apply_encoded(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one write batch in its JSON form, as ``syncd_apply`` takes it."""
        raise NotImplementedError

    async def load(self, project_id: ProjectId) -> ProjectRows:
        """Read a project with its scenes and clips, for the engine.

        Raises:
            UpstreamError: the read failed or is not shaped like one.
        """
        return project_rows(await self.read_project(project_id))

    async def apply(self, batch: WriteBatch) -> WriteOk:
        """Apply one write batch of the engine in one transaction.

        Raises:
            WriteError: the batch failed (``retryable`` says whether to try again).
            UpstreamError: the answer is not shaped like ``syncd_apply``'s.
        """
        return write_ok(batch.batch_id, await self.apply_encoded(encode_batch(batch)))


def open_backend(
    settings: SyncdSettings, *, one_shot: bool = False, read_only: bool = False
) -> LocalBackend | SupabaseBackend:
    """The backend the settings name: Supabase when it is configured, else the embedded store.

    Both the daemon and the one-shot commands (``project``, ``import``: ``one_shot``, which follows no
    changes and does not wait for an unreachable Supabase) get their backend here. The adapters are
    imported on demand, so local mode never loads the Supabase client libraries.

    ``read_only`` (a dry run) opens the embedded store without creating or changing anything, not even
    its folder; Supabase is only read by a caller that writes nothing.
    """
    if settings.mode == "supabase":
        from syncd.adapters.supabase import SupabaseBackend

        return SupabaseBackend(settings.supabase, settings.writer, one_shot=one_shot)
    from syncd.adapters.local import LocalBackend

    return LocalBackend(settings.daemon.state_dir / "store.db", read_only=read_only)


def project_rows(data: Mapping[str, Any]) -> ProjectRows:
    """Turn a read document into the core's :class:`ProjectRows`.

    Raises:
        UpstreamError: the document is not shaped like a read (a bug or a schema mismatch).
    """
    try:
        return ProjectRows(
            project=data["project"],
            scenes=tuple(data["scenes"]),
            clips=tuple(data["clips"]),
            applied=dict(data.get("applied") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"malformed read from the backend: {exc}") from exc


def write_ok(batch_id: int, data: Mapping[str, Any]) -> WriteOk:
    """Turn an apply answer into the core's :class:`WriteOk`.

    Raises:
        UpstreamError: the answer is not shaped like ``syncd_apply``'s.
    """
    try:
        rows = tuple((table_named(r["table"]), r["row"]) for r in data["rows"])
        missing = tuple((table_named(m["table"]), RowId(m["id"])) for m in data["missing"])
        return WriteOk(batch_id, rows, missing)
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"malformed apply answer from the backend: {exc}") from exc
