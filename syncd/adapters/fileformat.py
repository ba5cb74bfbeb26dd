"""The format number of syncd's SQLite files, so that no syncd writes a file a newer one has changed.

Each file keeps its number in SQLite's ``user_version`` header field. A number above what this build
knows means a newer syncd wrote the file, and its rows may mean something this build would misread:
the embedded store's ``syncd_mutations`` went from a row per mutation to each client's highest mid, and
a build that looked mids up one by one would apply a replayed edit twice. Such a file is refused before
anything writes to it. Files from before the number read 0; their own migration brings them up to date.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from syncd.errors import StartupError

T = TypeVar("T")


def connect(
    path: Path, known: int, prepare: Callable[[sqlite3.Connection], T], *, read_only: bool = False
) -> tuple[sqlite3.Connection, T]:
    """Open ``path`` in autocommit mode, refuse a file a newer syncd wrote, then prepare and stamp it.

    ``prepare`` (pragmas, tables, the file's own migration) runs only once the file's number is known
    to be this build's or older; the number is then set to ``known``. Whatever fails on the way, the
    connection is closed before the error leaves.

    With ``read_only``, the file must exist and is neither changed nor stamped (``prepare`` must not
    write either): for a look that leaves no trace, such as a dry run.

    Returns:
        The connection and what ``prepare`` returned.

    Raises:
        StartupError: the file's number is above ``known``; the message names the file and both numbers.
        sqlite3.Error: the file cannot be read, or ``prepare`` failed.
    """
    if read_only:
        # A reader of a WAL file makes its -wal and -shm when they are missing, and cannot remove them
        # after. They are missing only when no one has the file open: nothing can change it meanwhile,
        # so it is read as immutable, which needs neither.
        wal = path.with_name(path.name + "-wal")
        mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
        db = sqlite3.connect(f"{path.absolute().as_uri()}?{mode}", uri=True, isolation_level=None)
    else:
        db = sqlite3.connect(path, isolation_level=None)
    try:
        found = int(db.execute("pragma user_version").fetchone()[0])
        if found > known:
            raise StartupError(
                f"{path} was written by a newer syncd (file format {found}; this syncd reads up to {known}):"
                " run that version or a later one; the file was left as it was"
            )
        prepared = prepare(db)
        if found != known and not read_only:
            db.execute(f"pragma user_version = {known:d}")
    except BaseException:
        db.close()
        raise
    return db, prepared


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``begin immediate`` transaction on a connection in autocommit mode: committed when the block
    ends, rolled back when it raises.

    SQLite ends a transaction by itself on some errors (a full disk); a rollback then would raise "no
    transaction is active" in place of the error that says what went wrong.
    """
    db.execute("begin immediate")
    try:
        yield db
        db.execute("commit")
    except BaseException:
        if db.in_transaction:
            db.execute("rollback")
        raise
