"""Which database rows the engine believes, and what editors must be told.

The change feed is a hint: it repeats our own writes (echoes), delivers late, out of order or not at
all. The engine keeps, per row, the last row the database reported and its ``version`` (raised by a
trigger on every update), and for rows it saw deleted a `Tombstone`. These pure rules decide with
those alone; re-reads settle whatever they cannot (see `syncd.core.project`).

Limitation: ``version`` restarts at 1 when a deleted id is inserted again. A late change of the old
incarnation can then be mistaken for one of the new one (or hide it) until the next re-read.
"""

from dataclasses import dataclass

from syncd.core.values import JsonValue, Row, row_version


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A row the engine saw deleted.

    Attributes:
        version: the deleted row's last version (as reported, or as known).
        learned: the project's event counter when the engine learned of the delete.
    """

    version: int
    learned: int


def accept_upsert(known: Row | None, tombstone: Tombstone | None, version: int) -> bool:
    """True when a reported row is newer than what the engine knows (not an echo, not stale)."""
    if known is not None:
        return version > row_version(known)
    if tombstone is not None:
        return version > tombstone.version
    return True


def accept_written(known: Row | None, tombstone: Tombstone | None, version: int, sent: int) -> bool:
    """True when a row returned by a write is at least as new as what the engine knows.

    Args:
        known: the row the engine knows.
        tombstone: the row's tombstone, if it was seen deleted.
        version: the returned row's version.
        sent: the project's event counter when the batch was sent; a delete learned after that may
            have happened after the write, so it wins unless the returned row is newer.
    """
    if known is not None:
        return version >= row_version(known)
    if tombstone is not None and tombstone.learned > sent:
        return version > tombstone.version
    return True


def accept_delete(known: Row, tombstone: Tombstone | None, version: int | None) -> bool:
    """True when a reported delete removes the row the engine knows.

    A delete that carries a version older than the known row, or not newer than an earlier tombstone
    of the same id, deleted an earlier incarnation of the row (a late echo): ignored.
    """
    if version is None:
        return True
    if version < row_version(known):
        return False
    return tombstone is None or version > tombstone.version


def diff(old: Row, new: Row) -> dict[str, JsonValue]:
    """Return the fields whose value differs between two visible rows, with their new values.

    A field that disappeared reads as None: rows from the database always hold every column.
    """
    changed = {name: value for name, value in new.items() if name not in old or old[name] != value}
    for name in old:
        if name not in new:
            changed[name] = None
    return changed
