"""DeadlineTimer: the one loop timer that drives the sans-I/O engine's deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    """Calls ``fire`` at the earliest deadline it was armed with, on the running loop's clock.

    It is re-armed only when a deadline moves earlier: a deadline that moved later or went away just
    makes it fire once for nothing, which costs less than a new timer handle per edit. ``fire`` asks
    the engine what is due and arms the timer again.

    Args:
        fire: called when the deadline passes.
    """

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, deadline: float | None) -> None:
        """Fire at ``deadline`` (loop time) unless the timer already fires earlier; None changes nothing."""
        if deadline is None or (self._at is not None and deadline >= self._at):
            return
        self.cancel()
        self._at = deadline
        self._handle = asyncio.get_running_loop().call_at(deadline, self._fired)

    def cancel(self) -> None:
        """Fire no more until armed again."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._at = None

    def _fired(self) -> None:
        self._handle = self._at = None
        self._fire()
