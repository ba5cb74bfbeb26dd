"""Debouncer: quiet period, max wait, flush all. Times are exact binary fractions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_due_keys_come_in_touch_order_whatever_their_deadlines() -> None:
    """A key touched first comes first, also when a later key's deadline is earlier."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    d.touch(DOC, now=0.0)
    d.touch(OTHER, now=0.5)
    d.touch(DOC, now=1.0)
    assert d.next_deadline() == 1.0
    assert d.pop_due(now=2.0) == [DOC, OTHER]


@pytest.mark.parametrize(("quiet", "max_wait"), [(-0.25, 1.0), (1.0, 0.5)])
def test_refuses_nonsense(quiet: float, max_wait: float) -> None:
    """A negative quiet period, or a max wait below it, is refused."""
    with pytest.raises(ValueError, match="quiet"):
        Debouncer(quiet=quiet, max_wait=max_wait)


class ScanDebouncer:
    """The debouncer as first written, a scan of every key: the reference the heap must agree with."""

    def __init__(self, quiet: float, max_wait: float) -> None:
        self.quiet, self.max_wait = quiet, max_wait
        self.due: dict[str, tuple[float, float]] = {}

    def touch(self, key: str, now: float) -> None:
        first = self.due[key][0] if key in self.due else now
        self.due[key] = (first, min(now + self.quiet, first + self.max_wait))

    def next_deadline(self) -> float | None:
        return min((deadline for _, deadline in self.due.values()), default=None)

    def pop_due(self, now: float) -> list[str]:
        due = [key for key, (_, deadline) in self.due.items() if deadline <= now]
        for key in due:
            del self.due[key]
        return due


KEYS = ["a", "b", "c", "d"]
Op = tuple[str, int, int]  # (what, key index, quarter seconds to advance)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["touch", "discard", "pop", "next", "all"]), st.integers(0, 3), st.integers(0, 8)
        ),
        max_size=300,
    )
)
def test_the_heap_agrees_with_a_scan_of_every_key(ops: list[Op]) -> None:
    """Any sequence of touches, discards, flushes and questions: the same answers as scanning every key."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=2.0)
    ref = ScanDebouncer(quiet=0.5, max_wait=2.0)
    now = 0.0
    for what, index, step in ops:
        now += step * 0.25
        key = KEYS[index]
        if what == "touch":
            d.touch(key, now)
            ref.touch(key, now)
        elif what == "discard":
            d.discard(key)
            ref.due.pop(key, None)
        elif what == "pop":
            assert d.pop_due(now) == ref.pop_due(now)
        elif what == "all":
            assert d.flush_all() == list(ref.due)
            ref.due.clear()
        assert d.next_deadline() == ref.next_deadline()


def test_a_key_touched_without_end_keeps_one_answer_and_a_bounded_heap() -> None:
    """A thousand touches of one key with no question in between: the deadline is the last one's."""
    d: Debouncer[str] = Debouncer(quiet=0.5, max_wait=1000.0)
    for n in range(1000):
        d.touch(DOC, now=n * 0.25)
    assert d.next_deadline() == 999 * 0.25 + 0.5
    assert len(d._heap) <= 2 * 1 + 64 + 1
    assert d.pop_due(now=999 * 0.25 + 0.5) == [DOC]
    assert d.next_deadline() is None
