"""Retry delays: exponential, capped, with jitter."""

from collections.abc import Callable, Iterator


def backoff_delays(initial: float, maximum: float, factor: float = 2.0) -> Iterator[float]:
    """Yield ``initial``, ``initial * factor``, ... capped at ``maximum``, forever.

    Raises:
        ValueError: ``initial`` is not positive, ``maximum`` is below it, or ``factor`` below 1.
    """
    if initial <= 0 or maximum < initial or factor < 1:
        raise ValueError("need 0 < initial <= maximum and factor >= 1")
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


class Backoff:
    """The delays before successive retries of one failing thing.

    Each delay is the next `backoff_delays` value scaled into ``[1/2, 1)`` of itself by ``jitter``,
    so that projects that failed together do not retry together.

    Args:
        initial: seconds before the first retry (before jitter).
        maximum: the cap in seconds.
        jitter: returns a number in ``[0, 1)``; ``random.random`` in production.
    """

    def __init__(self, initial: float, maximum: float, jitter: Callable[[], float]) -> None:
        self.initial = initial
        self.maximum = maximum
        self._jitter = jitter
        self._delays = backoff_delays(initial, maximum)
        self.attempts = 0

    def next_delay(self) -> float:
        """Return the delay before the next retry and count the attempt."""
        self.attempts += 1
        return next(self._delays) * (0.5 + 0.5 * self._jitter())

    def reset(self) -> None:
        """Start over after a success."""
        self._delays = backoff_delays(self.initial, self.maximum)
        self.attempts = 0
