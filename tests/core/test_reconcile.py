"""Echo, staleness and delete rules, and visible differences."""

from syncd.core.reconcile import Tombstone, accept_delete, accept_upsert, accept_written, diff
from syncd.core.values import JsonValue

ROW: dict[str, JsonValue] = {"id": "x", "version": 5}


def test_accept_upsert() -> None:
    """A reported row is taken only when newer than the known row, or than the tombstone of an unknown one."""
    assert not accept_upsert(ROW, None, 5)
    assert accept_upsert(ROW, None, 6)
    assert not accept_upsert(None, Tombstone(5, 1), 5)
    assert accept_upsert(None, Tombstone(5, 1), 6)
    assert accept_upsert(None, None, 1)


def test_accept_written() -> None:
    """A returned row is taken unless older than known, or deleted after the batch was sent."""
    assert accept_written(ROW, None, 5, sent=0)
    assert not accept_written(ROW, None, 4, sent=0)
    assert not accept_written(None, Tombstone(5, learned=3), 5, sent=2)
    assert accept_written(None, Tombstone(5, learned=3), 6, sent=2)
    # A tombstone learned before the batch was sent is of an earlier incarnation.
    assert accept_written(None, Tombstone(9, learned=1), 1, sent=2)
    assert accept_written(None, None, 1, sent=2)


def test_accept_delete() -> None:
    """A delete applies unless its version is older than the known row or not above an old tombstone."""
    assert accept_delete(ROW, None, None)
    assert accept_delete(ROW, None, 5)
    assert not accept_delete(ROW, None, 4)
    assert not accept_delete(ROW, Tombstone(6, 1), 6)
    assert accept_delete(ROW, Tombstone(5, 1), 6)


def test_diff() -> None:
    """Changed, added and vanished fields are reported; equal ones are not."""
    assert diff({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 9, "d": 4}) == {"b": 9, "d": 4, "c": None}
    assert diff({"a": [1]}, {"a": [1]}) == {}
