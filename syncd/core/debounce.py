"""Debouncer: when each key's pending changes should be flushed. Deadline arithmetic only."""

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Debouncer(Generic[K]):
    """Flush a key once it has been quiet for ``quiet`` seconds, and never later than ``max_wait`` after
    its first unflushed change.

    Args:
        quiet: seconds of silence after the last change before a flush.
        max_wait: seconds after the first unflushed change by which a flush happens anyway.

    Raises:
        ValueError: a negative duration, or ``max_wait`` below ``quiet``.
    """

    def __init__(self, *, quiet: float, max_wait: float) -> None:
        if quiet < 0 or max_wait < quiet:
            raise ValueError("need 0 <= quiet <= max_wait")
        self.quiet = quiet
        self.max_wait = max_wait
        self._due: dict[K, tuple[float, float]] = {}

    def touch(self, key: K, now: float) -> None:
        """Record a change of ``key`` at ``now``."""
        entry = self._due.get(key)
        first = now if entry is None else entry[0]
        self._due[key] = (first, min(now + self.quiet, first + self.max_wait))

    def next_deadline(self) -> float | None:
        """The earliest time a key becomes due, or None when nothing waits."""
        earliest = None
        for _, deadline in self._due.values():
            if earliest is None or deadline < earliest:
                earliest = deadline
        return earliest

    def pop_due(self, now: float) -> list[K]:
        """Forget and return every key whose deadline is at or before ``now``, in touch order."""
        due = [key for key, (_, deadline) in self._due.items() if deadline <= now]
        for key in due:
            del self._due[key]
        return due

    def discard(self, key: K) -> None:
        """Forget a key (it was flushed for another reason)."""
        self._due.pop(key, None)

    def flush_all(self) -> list[K]:
        """Forget and return every key (shutdown)."""
        keys = list(self._due)
        self._due.clear()
        return keys
