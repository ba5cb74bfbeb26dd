"""TokenBucket: the mutation rate limit of protocol §11, for the daemon that enforces it and the
clients that keep to it."""

# Refills are sums of float products: a bucket waited out to the exact instant could hold 0.9999999
# tokens and give none.
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens per second on average, at most ``burst`` held, full at first; time is ``now``.

    Args:
        rate: tokens added per second.
        burst: the most the bucket holds.
        now: the caller's clock, in seconds.
        reserve: tokens never given out. A client pacing itself to a daemon's bucket of the same size
            keeps some: frames sent at the exact rate can arrive closer together than they were sent.

    Raises:
        ValueError: ``rate`` not above 0, ``burst`` below 1, or ``reserve`` not below ``burst``.
    """

    def __init__(self, rate: float, burst: int, now: float, *, reserve: int = 0) -> None:
        if not rate > 0 or burst < 1 or not 0 <= reserve < burst:
            raise ValueError(
                f"a token bucket needs rate > 0 and 0 <= reserve < burst >= 1, got {rate}, {burst}, {reserve}"
            )
        self._rate = rate
        self._burst = float(burst)
        self._reserve = reserve
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Give one token at ``now`` if one above the reserve is there; False (and none taken) if not."""
        self._refill(now)
        if self._tokens - self._reserve < 1 - _EPSILON:
            return False
        self._tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until :meth:`take` gives a token (0 if it would now)."""
        self._refill(now)
        return max(0.0, (self._reserve + 1 - self._tokens) / self._rate)

    def _refill(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._stamp) * self._rate)
        self._stamp = max(self._stamp, now)
