"""Retry delays: exponential, capped, jittered, reset after success."""

from itertools import islice

import pytest

from syncd.core.backoff import Backoff, backoff_delays


def test_delays_double_up_to_the_cap() -> None:
    """Delays grow by the factor and stay at the maximum."""
    assert list(islice(backoff_delays(0.5, 3.0), 6)) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(islice(backoff_delays(1.0, 10.0, factor=3.0), 3)) == [1.0, 3.0, 9.0]


@pytest.mark.parametrize(
    ("initial", "maximum", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)]
)
def test_refuses_nonsense(initial: float, maximum: float, factor: float) -> None:
    """A zero start, a cap below the start, or a shrinking factor is refused."""
    with pytest.raises(ValueError, match="initial"):
        next(backoff_delays(initial, maximum, factor))


def test_jitter_scales_each_delay() -> None:
    """Jitter 0 halves the delay, jitter near 1 keeps nearly all of it; reset starts over."""
    draws = iter([0.0, 0.5, 0.75, 0.0])
    backoff = Backoff(1.0, 8.0, lambda: next(draws))
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.5, 3.5]
    assert backoff.attempts == 3
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == 0.5
