"""The last changes of a project, so a reconnecting editor can get exactly what it missed."""

import marshal
from collections import deque
from itertools import islice

from syncd.core.effects import Change
from syncd.core.ids import ClientId
from syncd.core.values import Row, row_size

CHANGE_OVERHEAD = 160
"""Bytes a change frame takes besides its row or values (type, seq, table, ids, origin, mid)."""


def change_size(change: Change) -> int:
    """About how many bytes the change's frame takes (see `syncd.core.values.encoded_size`)."""
    values: Row | None = change.row if change.row is not None else change.set
    return CHANGE_OVERHEAD + (0 if values is None else row_size(values))


class History:
    """The most recent changes of one epoch, in seq order, within a count and a byte budget.

    The oldest changes go first when either is passed; a single change larger than the byte budget
    is not kept at all, so resuming from before it takes a snapshot.

    Each change is kept marshalled, beside its author and size, in a tuple the cyclic GC stops
    tracking: kept as objects, 20 full histories (200,000 changes with their dicts) made every full
    collection walk them, 77 ms each on the reference machine, a pause that grows with the projects
    open. Catching up, which is rare, rebuilds the changes.

    Args:
        size: how many changes to keep.
        max_bytes: how many bytes of changes to keep, as `change_size` counts them.
    """

    def __init__(self, size: int, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._kept: deque[tuple[ClientId | None, int | None, int, bytes]] = deque()
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
        if change.seq != self._seq + 1:
            raise ValueError(f"change seq {change.seq} does not follow {self._seq}")
        self._seq = change.seq
        size = change_size(change)
        self._kept.append((change.client_id, change.mid, size, _dump(change)))
        self._bytes += size
        while self._kept and (len(self._kept) > self._size or self._bytes > self._max_bytes):
            self._bytes -= self._kept.popleft()[2]

    def ack_seq(self, client_id: ClientId, mid: int) -> int | None:
        """The seq of the last kept change made by this mutation, if any (for re-acknowledgements)."""
        for back, (author, author_mid, _, _) in enumerate(reversed(self._kept)):
            if author_mid == mid and author == client_id:
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
        return tuple(_load(kept[3]) for kept in islice(self._kept, seq + 1 - first, None))


def _dump(c: Change) -> bytes:
    row = None if c.row is None else dict(c.row)
    values = None if c.set is None else dict(c.set)
    return marshal.dumps(
        (c.project_id, c.seq, c.table, c.op, c.id, row, values, c.origin, c.client_id, c.mid)
    )


def _load(blob: bytes) -> Change:
    return Change(*marshal.loads(blob))  # noqa: S302 -- only ever what _dump made in this process
