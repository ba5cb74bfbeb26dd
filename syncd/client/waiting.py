"""The futures that `EditorClient` calls wait on: one per unanswered mid, and one per ping."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from syncd.client.events import Acknowledged
from syncd.client.frames import ping_key

__all__ = ["Answers", "PingWaiters", "Pong", "retrieve"]

KEPT_ANSWERS: Final = 10_000
"""Answers kept for a later ``wait_ack()`` after nobody awaited them."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ``ping``.

    Args:
        t: the value sent with the ping, echoed back.
        rtt: seconds from queueing the ping to reading the pong, on the event loop's clock.
    """

    t: Any
    rtt: float


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an answer nobody awaits as seen, so asyncio does not log it; awaiting it later still raises."""
    if not future.cancelled():
        future.exception()


def _new_future() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(retrieve)
    return future


class Answers:
    """The outcome of each mutation by mid: waiting, or answered (the last `KEPT_ANSWERS` of them)."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[Acknowledged]] = {}
        self._answered: OrderedDict[int, asyncio.Future[Acknowledged]] = OrderedDict()

    def expect(self, mid: int) -> None:
        """Mutation ``mid`` was sent: make a future for its answer."""
        self._waiting[mid] = _new_future()

    def future(self, mid: int) -> asyncio.Future[Acknowledged]:
        """The future of ``mid``'s answer.

        Raises:
            KeyError: no mutation with this mid is waiting, or its answer is too old to be kept.
        """
        future = self._waiting.get(mid) or self._answered.get(mid)
        if future is None:
            raise KeyError(f"no mutation with mid {mid} is waiting or recently answered")
        return future

    def settle(self, mid: int, outcome: Acknowledged | BaseException) -> None:
        """Answer ``mid`` with its ack or the exception its callers get, and keep the answer a while."""
        future = self._waiting.pop(mid, None) or _new_future()
        if not future.done():
            if isinstance(outcome, Acknowledged):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
        self._answered[mid] = future
        if len(self._answered) > KEPT_ANSWERS:
            self._answered.popitem(last=False)

    def revive(self, mids: list[int]) -> None:
        """``mids`` are being sent again: those whose future failed with a lost connection wait afresh."""
        for mid in mids:
            future = self._waiting.get(mid)
            if future is None or future.done():
                self._waiting[mid] = _new_future()

    def fail_all(self, error: BaseException) -> None:
        """The connection is gone: every waiting call raises ``error`` (the mids stay unanswered)."""
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)


class PingWaiters:
    """The calls waiting for a ``pong``, by the ``t`` they sent, with the loop time they started."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[asyncio.Future[Pong], float]]] = {}

    def add(self, t: Any, now: float) -> asyncio.Future[Pong]:
        """Return a future for the pong that echoes ``t``."""
        future: asyncio.Future[Pong] = _new_future()
        self._waiting.setdefault(ping_key(t), []).append((future, now))
        return future

    def settle(self, t: Any, now: float) -> None:
        """The pong for ``t`` came at ``now``: answer every call that waits for it."""
        for future, started in self._waiting.pop(ping_key(t), []):
            if not future.done():
                future.set_result(Pong(t, now - started))

    def fail_all(self, error: BaseException) -> None:
        """The connection is gone: every waiting ping raises ``error``."""
        for waiters in self._waiting.values():
            for future, _ in waiters:
                if not future.done():
                    future.set_exception(error)
        self._waiting.clear()
