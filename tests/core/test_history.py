"""History: exactly the missed changes, or None."""

import gc
import json

import pytest

from syncd.core.effects import Change
from syncd.core.history import CHANGE_OVERHEAD, History, change_size
from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.values import JsonValue

EVERY_JSON_TYPE: dict[str, JsonValue] = {
    "id": "s",
    "n": 1,
    "f": 1.5,
    "ok": True,
    "none": None,
    "list": [1, "é"],
    "obj": {"k": "v"},
}
"""A row with a value of each JSON type, nested ones included."""


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


def update(seq: int, body: str) -> Change:
    return Change(
        ProjectId("p"), seq, "scenes", "update", RowId("s"), None, {"body": body}, "editor", None, None
    )


def test_the_byte_budget_evicts_the_oldest_changes() -> None:
    """Large changes push the oldest out long before the count is reached; what is kept stays in budget."""
    size = change_size(update(1, "😀" * 1000))
    assert size == CHANGE_OVERHEAD + len('{"body":""},') + 4000  # 4 UTF-8 bytes a character
    history = History(10_000, max_bytes=3 * size)
    for seq in range(1, 11):
        history.append(update(seq, "😀" * 1000))
        assert history.kept_bytes <= 3 * size
    assert history.kept_bytes == 3 * size
    assert [c.seq for c in history.since(7) or ()] == [8, 9, 10]
    assert history.since(6) is None


def test_a_change_larger_than_the_budget_is_not_kept() -> None:
    """A change over the whole budget empties the history: only the current seq resumes without a snapshot."""
    history = History(10, max_bytes=1000)
    history.append(update(1, "small"))
    history.append(update(2, "x" * 2000))
    assert history.kept_bytes == 0
    assert history.since(2) == ()
    assert history.since(1) is None
    history.append(update(3, "small"))
    assert [c.seq for c in history.since(2) or ()] == [3]


def test_change_size_counts_the_row_of_an_insert_and_nothing_for_a_delete() -> None:
    """An insert counts its row, an update its values, a delete only the frame's fixed part."""
    row = EVERY_JSON_TYPE
    insert = Change(ProjectId("p"), 1, "scenes", "insert", RowId("s"), row, None, "db", None, None)
    encoded = len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode())
    # An estimate: never below the encoded size (numbers count 8 bytes, separators one each).
    assert encoded <= change_size(insert) - CHANGE_OVERHEAD <= encoded + 8 * len(row)
    assert change_size(change(1)) == CHANGE_OVERHEAD


def test_changes_come_back_as_they_were_kept() -> None:
    """Every JSON type in a row or in an update's values survives being kept, nested ones included."""
    row = EVERY_JSON_TYPE
    values: dict[str, JsonValue] = {"obj": {"t": [1, "é"], "e": []}}
    kept = [
        Change(ProjectId("p"), 1, "scenes", "insert", RowId("s"), row, None, "editor", ClientId("a"), 7),
        Change(ProjectId("p"), 2, "scenes", "update", RowId("s"), None, values, "db", None, None),
        Change(ProjectId("p"), 3, "scenes", "delete", RowId("s"), None, None, "editor", ClientId("b"), 1),
    ]
    history = History(10)
    for c in kept:
        history.append(c)
    assert history.since(0) == tuple(kept)


def test_kept_changes_give_the_cyclic_gc_nothing_to_walk() -> None:
    """A full history of changes with nested values adds next to no objects that full collections walk."""
    gc.collect()
    before = len(gc.get_objects())
    history = History(5_000)
    for seq in range(1, 5_001):
        values: dict[str, JsonValue] = {"settings": {"k": seq, "tags": ["a"]}}
        history.append(
            Change(
                ProjectId("p"),
                seq,
                "projects",
                "update",
                RowId("p"),
                None,
                values,
                "editor",
                ClientId("a"),
                seq,
            )
        )
    gc.collect()
    assert len(gc.get_objects()) - before < 500  # kept as objects: more than 15,000
    assert history.ack_seq(ClientId("a"), 4_999) == 4_999
