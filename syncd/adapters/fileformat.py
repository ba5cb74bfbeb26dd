"""The format number of syncd's SQLite files, so that no syncd writes a file a newer one has changed.

Each file keeps its number in SQLite's ``user_version`` header field. A number above what this build
knows means a newer syncd wrote the file, and its rows may mean something this build would misread:
the embedded store's ``syncd_mutations`` went from a row per mutation to each client's highest mid, and
a build that looked mids up one by one would apply a replayed edit twice. Such a file is refused before
anything writes to it. Files from before the number read 0; their own migration brings them up to date.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd.errors import StartupError


def connect(path: Path, known: int) -> tuple[sqlite3.Connection, int]:
    """Open ``path`` in autocommit mode, refusing a file a newer syncd wrote before anything writes to it.

    Returns:
        The connection and the file's format number (0: from before the number was kept).

    Raises:
        StartupError: the file's number is above ``known``; the message names the file and both numbers.
        sqlite3.Error: the file cannot be read.
    """
    db = sqlite3.connect(path, isolation_level=None)
    try:
        found = int(db.execute("pragma user_version").fetchone()[0])
        if found > known:
            raise StartupError(
                f"{path} was written by a newer syncd (file format {found}; this syncd reads up to {known}):"
                " run that version or a later one; the file was left as it was"
            )
    except BaseException:
        db.close()
        raise
    return db, found


def stamp(db: sqlite3.Connection, found: int, known: int) -> None:
    """Record ``known`` as the file's format once it holds that format (nothing to write when it did)."""
    if found != known:
        db.execute(f"pragma user_version = {known:d}")
