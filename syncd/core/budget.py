"""ByteBudget: how many bytes may be spent within a sliding window of time."""

from collections import deque
from collections.abc import Callable
from typing import Self


class ByteBudget:
    """At most ``limit`` bytes within any ``window`` seconds; time is the caller's ``now``.

    Args:
        limit: the bytes the window holds.
        window: its length in seconds.

    Raises:
        ValueError: ``limit`` below 1 or ``window`` not above 0.
    """

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or not window > 0:
            raise ValueError(f"a byte budget needs limit >= 1 and window > 0, got {limit} and {window}")
        self._limit = limit
        self._window = window
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0

    @classmethod
    def factory(cls, limit: int, window: float) -> Callable[[], Self]:
        """A maker of fresh budgets of these bounds (checked now, not at the first use)."""
        cls(limit, window)
        return lambda: cls(limit, window)

    @property
    def spent(self) -> int:
        """The bytes spent within the window that ended at the last `spend`."""
        return self._total

    def spend(self, size: int, now: float) -> bool:
        """Spend ``size`` bytes at ``now`` if the window has room; False (and nothing spent) if not."""
        while self._spent and self._spent[0][0] <= now - self._window:
            self._total -= self._spent.popleft()[1]
        if self._total + size > self._limit:
            return False
        self._spent.append((now, size))
        self._total += size
        return True
