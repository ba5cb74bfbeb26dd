"""Read a daemon's SQLite files (the embedded store, the outbox) straight from its state directory."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OWNED_TABLES = ("projects", "scenes", "clips")


def query(path: Path, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
    """Run one query on the SQLite file at ``path``, read-only (the daemon may be writing it)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def store_rows(state_dir: Path, table: str, project_id: str) -> dict[str, dict[str, Any]]:
    """The rows of ``table`` that belong to a project, by id, read from ``store.db``."""
    assert table in OWNED_TABLES, f"not a synced table: {table!r}"
    owner = "id" if table == "projects" else "project_id"
    rows = query(state_dir / "store.db", f"select * from {table} where {owner} = ?", (project_id,))  # noqa: S608
    return {row["id"]: dict(row) for row in rows}


def outbox_count(state_dir: Path) -> int:
    """Entries in the daemon's durable outbox, read from ``outbox.db``."""
    (row,) = query(state_dir / "outbox.db", "select count(*) from journal")
    count: int = row[0]
    return count


def held_open(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux's ``/proc/self/fd``)."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:  # the descriptor of the listing itself, closed by the time it is read
            continue
    return count
