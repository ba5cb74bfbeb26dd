"""The last changes of a project, so a reconnecting editor can get exactly what it missed."""

from collections import deque
from itertools import islice

from syncd.core.effects import Change
from syncd.core.ids import ClientId


class History:
    """The most recent changes of one epoch, in seq order.

    Args:
        size: how many changes to keep.
    """

    def __init__(self, size: int) -> None:
        self._changes: deque[Change] = deque(maxlen=size)
        self._seq = 0

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
        self._changes.append(change)

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
