"""TokenBucket: a rate on average, a burst at once, a reserve a client keeps; time is a number."""

from __future__ import annotations

import pytest

from syncd.core.pace import TokenBucket


def test_a_full_bucket_gives_its_burst_then_the_rate() -> None:
    """Four at once from a bucket of four, then one every half second at two per second."""
    bucket = TokenBucket(2.0, 4, now=10.0)
    assert [bucket.take(10.0) for _ in range(5)] == [True, True, True, True, False]
    assert bucket.wait(10.0) == pytest.approx(0.5)
    assert bucket.take(10.4) is False
    assert bucket.take(10.5) is True
    assert bucket.take(10.5) is False
    assert bucket.take(100.0) is True  # a long pause refills it, to the burst and no further
    assert sum(bucket.take(100.0) for _ in range(10)) == 3


def test_a_reserve_is_never_given_out() -> None:
    """With a reserve of one, a bucket of four gives three, and waits as if the fourth were not there."""
    bucket = TokenBucket(2.0, 4, now=0.0, reserve=1)
    assert sum(bucket.take(0.0) for _ in range(10)) == 3
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.wait(0.5) == 0.0
    assert bucket.take(0.5) is True


def test_a_clock_that_steps_back_neither_refills_nor_drains() -> None:
    """A ``now`` before the last one counts as no time passed."""
    bucket = TokenBucket(1.0, 1, now=5.0)
    assert bucket.take(5.0) is True
    assert bucket.take(4.0) is False
    assert bucket.wait(4.0) == pytest.approx(1.0)
    assert bucket.take(6.0) is True


@pytest.mark.parametrize(("rate", "burst", "reserve"), [(0.0, 1, 0), (1.0, 0, 0), (1.0, 2, 2), (1.0, 2, -1)])
def test_a_bucket_that_could_never_give_is_refused(rate: float, burst: int, reserve: int) -> None:
    """No rate, no burst, or a reserve as large as the burst is a ValueError naming the values."""
    with pytest.raises(ValueError, match="token bucket needs"):
        TokenBucket(rate, burst, now=0.0, reserve=reserve)
