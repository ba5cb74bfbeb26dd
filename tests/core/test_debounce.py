"""Debouncer: quiet period, max wait, flush all. Times are exact binary fractions."""

import pytest

from syncd.core.debounce import Debouncer

DOC = "doc"
OTHER = "other"


def test_flushes_after_quiet_period() -> None:
    """A key is due once it has been quiet for `quiet` seconds."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    d.touch(DOC, now=0.0)
    d.touch(DOC, now=0.25)
    assert d.pop_due(now=0.5) == []
    assert d.next_deadline() == 0.75
    assert d.pop_due(now=0.75) == [DOC]
    assert d.next_deadline() is None


def test_max_wait_caps_continuous_changes() -> None:
    """A key touched every 0.25 s is still due `max_wait` after its first touch."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    for n in range(12):
        d.touch(DOC, now=n * 0.25)
        if n * 0.25 < 2.0:
            assert d.pop_due(now=n * 0.25) == []
    assert d.next_deadline() == 2.0


def test_flush_all_and_discard() -> None:
    """Shutdown returns every key; a discarded key is forgotten."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    d.touch(DOC, now=0.0)
    d.touch(OTHER, now=0.25)
    assert d.next_deadline() == 0.5
    d.discard(DOC)
    d.discard(DOC)
    assert d.next_deadline() == 0.75
    assert d.flush_all() == [OTHER]
    assert d.next_deadline() is None
    assert d.pop_due(now=10.0) == []


def test_due_keys_come_in_touch_order() -> None:
    """Keys due at the same time come back in the order they were first touched."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    d.touch(OTHER, now=0.0)
    d.touch(DOC, now=0.0)
    assert d.pop_due(now=1.0) == [OTHER, DOC]


@pytest.mark.parametrize(("quiet", "max_wait"), [(-0.25, 1.0), (1.0, 0.5)])
def test_refuses_nonsense(quiet: float, max_wait: float) -> None:
    """A negative quiet period, or a max wait below it, is refused."""
    with pytest.raises(ValueError, match="quiet"):
        Debouncer(quiet=quiet, max_wait=max_wait)
