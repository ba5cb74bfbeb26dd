"""History: exactly the missed changes, or None."""

import pytest

from syncd.core.effects import Change
from syncd.core.history import History
from syncd.core.ids import ClientId, ProjectId, RowId


def change(seq: int) -> Change:
    return Change(ProjectId("p"), seq, "scenes", "delete", RowId("s"), None, None, "db", None, None)


def test_since_returns_the_missed_changes() -> None:
    """Changes after a kept seq come back in order."""
    history = History(3)
    for seq in range(1, 6):
        history.append(change(seq))
    assert history.seq == 5
    assert [c.seq for c in history.since(2) or ()] == [3, 4, 5]
    assert history.since(5) == ()
    assert history.since(1) is None
    assert history.since(6) is None
    assert history.since(-1) is None


def test_empty_history() -> None:
    """Before any change only seq 0 is current; with size 0 only the current seq resumes."""
    assert History(3).since(0) == ()
    history = History(0)
    history.append(change(1))
    assert history.since(1) == ()
    assert history.since(0) is None


def test_seq_must_follow() -> None:
    """Appending a change out of order is a bug in the caller."""
    history = History(3)
    with pytest.raises(ValueError, match="does not follow"):
        history.append(change(2))


def test_ack_seq_is_the_last_change_of_the_mutation() -> None:
    """A resent mutation is acknowledged with the seq of its last kept change, or not found."""
    history = History(4)
    a, b = ClientId("a"), ClientId("b")
    for seq, (client, mid) in enumerate([(a, 1), (a, 2), (a, 2), (b, 2), (a, 3)], start=1):
        history.append(
            Change(ProjectId("p"), seq, "scenes", "delete", RowId("s"), None, None, "editor", client, mid)
        )
    assert history.ack_seq(a, 2) == 3
    assert history.ack_seq(b, 2) == 4
    assert history.ack_seq(a, 1) is None  # fell out of the history
    assert history.ack_seq(b, 9) is None
