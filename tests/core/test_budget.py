"""ByteBudget: bytes within a sliding window, with numbers for time."""

import pytest

from syncd.core.budget import ByteBudget


def test_spending_within_the_window_stops_at_the_limit() -> None:
    """Bytes spent in the last ``window`` seconds count; a spend that would pass the limit is refused."""
    budget = ByteBudget(100, 10.0)
    assert budget.spend(60, 0.0)
    assert budget.spend(40, 5.0)
    assert not budget.spend(1, 9.9)
    assert budget.spent == 100
    assert budget.spend(50, 10.0)  # the 60 of t=0 left the window
    assert budget.spent == 90
    assert not budget.spend(11, 14.0)
    assert budget.spend(100, 21.0)


def test_a_spend_larger_than_the_limit_is_always_refused() -> None:
    """Nothing over the whole limit ever fits, however long the wait."""
    budget = ByteBudget(100, 1.0)
    assert not budget.spend(101, 0.0)
    assert not budget.spend(101, 1000.0)
    assert budget.spent == 0


@pytest.mark.parametrize(("limit", "window"), [(0, 1.0), (10, 0.0), (10, -1.0), (10, float("nan"))])
def test_bad_bounds_are_refused(limit: int, window: float) -> None:
    """A budget that could never hold anything, or a window that is not positive, is a caller bug."""
    with pytest.raises(ValueError, match="byte budget"):
        ByteBudget(limit, window)
    with pytest.raises(ValueError, match="byte budget"):
        ByteBudget.factory(limit, window)


def test_the_factory_makes_fresh_budgets() -> None:
    """Each connection gets its own budget."""
    make = ByteBudget.factory(10, 1.0)
    first, second = make(), make()
    assert first.spend(10, 0.0)
    assert second.spend(10, 0.0)
