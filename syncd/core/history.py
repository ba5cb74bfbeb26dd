"""The last changes of a project, so a reconnecting editor can get exactly what it missed."""

import marshal
from collections import deque
from itertools import islice
from typing import TypeAlias

from syncd.core.effects import Change
from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.schema import StreamTable
from syncd.core.values import Row, row_size
from syncd.wire import ChangeOp, Origin

CHANGE_OVERHEAD = 160
"""Bytes a change frame takes besides its row or values (type, seq, table, ids, origin, mid)."""


def change_size(change: Change) -> int:
    """About how many bytes the change's frame takes (see `syncd.core.values.encoded_size`)."""
    values: Row | None = change.row if change.row is not None else change.set
    return CHANGE_OVERHEAD + (0 if values is None else row_size(values))


_Kept: TypeAlias = tuple[
    ProjectId,
    ClientId | None,
    int | None,
    int,
    StreamTable,
    ChangeOp,
    RowId,
    Origin,
    bytes | None,
    bytes | None,
]
"""A kept change: project, author, mutation id, size, table, op, row id, origin, row and values marshalled."""


class History:
    """The most recent changes of one epoch, in seq order, within a count and a byte budget.

    The oldest changes go first when either is passed; a single change larger than the byte budget
    is not kept at all, so resuming from before it takes a snapshot.

    A change is kept as a tuple of plain values, its row or values marshalled to bytes, which the
    cyclic GC stops tracking. Kept as objects, histories live long enough to reach the oldest
    generation, and every full collection walked them on the event loop's thread: 60-70 ms with 20
    full histories (`bench/gcpause.py`), a pause that grew with the projects open. Catching up, which
    is rare, rebuilds the changes.

    Args:
        size: how many changes to keep.
        max_bytes: how many bytes of changes to keep, as `change_size` counts them.
    """

    def __init__(self, size: int, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._kept: deque[_Kept] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = 0

    @property
    def kept_bytes(self) -> int:
        """The bytes of the changes kept, as `change_size` counts them."""
        return self._bytes

    @property
    def seq(self) -> int:
        """The seq of the last change appended (0 before the first)."""
        return self._seq

    def append(self, change: Change) -> None:
        """Keep a change; its seq must follow the last one.

        Raises:
            ValueError: the seq is not the next one (a bug in the caller).
        """
        c = change
        if c.seq != self._seq + 1:
            raise ValueError(f"change seq {c.seq} does not follow {self._seq}")
        self._seq = c.seq
        size = change_size(c)
        row = None if c.row is None else marshal.dumps(dict(c.row))
        values = None if c.set is None else marshal.dumps(dict(c.set))
        self._kept.append(
            (c.project_id, c.client_id, c.mid, size, c.table, c.op, c.id, c.origin, row, values)
        )
        self._bytes += size
        while self._kept and (len(self._kept) > self._size or self._bytes > self._max_bytes):
            self._bytes -= self._kept.popleft()[3]

    def ack_seq(self, client_id: ClientId, mid: int) -> int | None:
        """The seq of the last kept change made by this mutation, if any (for re-acknowledgements)."""
        for back, kept in enumerate(reversed(self._kept)):
            if kept[2] == mid and kept[1] == client_id:
                return self._seq - back
        return None

    def since(self, seq: int) -> tuple[Change, ...] | None:
        """Return every change after ``seq``, or None when some of them are no longer kept.

        None also for a seq in the future or below 0: the caller then sends a snapshot.
        """
        if seq > self._seq or seq < 0:
            return None
        first = self._seq - len(self._kept) + 1
        if seq + 1 < first:
            return None
        missed = islice(self._kept, seq + 1 - first, None)
        return tuple(_change(seq + 1 + n, kept) for n, kept in enumerate(missed))


def _change(seq: int, kept: _Kept) -> Change:
    project_id, client_id, mid, _, table, op, row_id, origin, row, values = kept
    return Change(
        project_id, seq, table, op, row_id, _unmarshal(row), _unmarshal(values), origin, client_id, mid
    )


def _unmarshal(blob: bytes | None) -> Row | None:
    return None if blob is None else marshal.loads(blob)  # noqa: S302 -- only what append marshalled
