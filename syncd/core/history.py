"""The last changes of a project, so a reconnecting editor can get exactly what it missed."""

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

    Args:
        size: how many changes to keep.
        max_bytes: how many bytes of changes to keep, as `change_size` counts them.
    """

    def __init__(self, size: int, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._changes: deque[Change] = deque()
        self._sizes: deque[int] = deque()
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
        self._changes.append(change)
        self._sizes.append(size)
        self._bytes += size
        while self._changes and (len(self._changes) > self._size or self._bytes > self._max_bytes):
            self._changes.popleft()
            self._bytes -= self._sizes.popleft()

    def ack_seq(self, client_id: ClientId, mid: int) -> int | None:
        """The seq of the last kept change made by this mutation, if any (for re-acknowledgements)."""
        for change in reversed(self._changes):
            if change.mid == mid and change.client_id == client_id:
                return change.seq
        return None

    def since(self, seq: int) -> tuple[Change, ...] | None:
        """Return every change after ``seq``, or None when some of them are no longer kept.

        None also for a seq in the future or below 0: the caller then sends a snapshot.
        """
        if seq > self._seq or seq < 0:
            return None
        first = self._seq - len(self._changes) + 1
        if seq + 1 < first:
            return None
        return tuple(islice(self._changes, seq + 1 - first, None))
