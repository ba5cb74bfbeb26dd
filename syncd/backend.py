"""The port between the daemon and a database backend, and the JSON documents that cross it.

Both backends (the embedded SQLite store and Supabase) take a write batch as the JSON object of
:func:`syncd.core.batch.encode_batch` and answer ``{"rows": [{"table", "row"}], "missing": [{"table",
"id"}]}``: the document that the ``syncd_apply`` Postgres function returns. Reads answer
``{"project": row | None, "scenes": [...], "clips": [...], "applied": {client_id: mid}}`` (``applied``:
the highest mid per client that the database recorded for the project; may be left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import ProjectRows, RemoteChange, WriteOk
from syncd.core.schema import TABLES, Table
from syncd.errors import UpstreamError

RemoteSink = Callable[[ProjectId, RemoteChange | None], None]
"""Where a backend reports what it hears: a change of a project, or None to ask for a re-read of it."""


class Backend(Protocol):
    """What the daemon needs from a database."""

    name: str

    async def load(self, project_id: str) -> dict[str, Any]:
        """Read a project and its scenes and clips."""

    async def reread(self, project_id: str) -> dict[str, Any]:
        """Read them again (after a reconnect, or on the anti-entropy timer)."""

    async def apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one write batch in one transaction; raise ``WriteError`` on failure."""

    async def project_owner(self, project_id: str) -> tuple[bool, str | None]:
        """Whether a project exists, and its ``user_id``."""

    def readiness(self) -> tuple[bool, str]:
        """Whether the backend is connected (and subscribed), and why not."""

    async def follow(self, project_id: str) -> None:
        """Start hearing changes of an open project (a backend without a change feed does nothing)."""

    async def unfollow(self, project_id: str) -> None:
        """Stop hearing changes of a project."""

    def feed_connected(self) -> bool | None:
        """Whether the change feed is connected; None when the backend has none."""


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
        rows = tuple((_table(r["table"]), r["row"]) for r in data["rows"])
        missing = tuple((_table(m["table"]), RowId(m["id"])) for m in data["missing"])
        return WriteOk(batch_id, rows, missing)
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"malformed apply answer from the backend: {exc}") from exc


def _table(name: object) -> Table:
    for table in TABLES:
        if name == table:
            return table
    raise ValueError(f"unknown table {name!r}")
