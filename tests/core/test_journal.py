"""Journal entries and their JSON form."""

import json
import re

import pytest

from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch
from syncd.core.journal import JournalEntry, JournalMutation, Reordered, decode_mutation, encode_mutation
from syncd.core.values import JsonValue

MUTATIONS: list[JournalMutation] = [
    Patch(1, "scenes", RowId("s"), {"heading": "h", "duration": 2.5, "voice_id": None}),
    Insert(2, "clips", {"id": "c", "project_id": "p", "metadata": {"k": [1, 2]}}),
    Delete(3, "clips", RowId("c")),
    Reordered(4, "scenes", ((RowId("a"), 0), (RowId("b"), 1))),
]


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_round_trip(mutation: JournalMutation) -> None:
    """Every journaled mutation survives its JSON form, through text too."""
    encoded = encode_mutation(mutation)
    assert decode_mutation(json.loads(json.dumps(encoded))) == mutation


def test_encoded_shape() -> None:
    """The JSON form names its type and holds plain lists."""
    assert encode_mutation(MUTATIONS[3]) == {
        "type": "reordered",
        "mid": 4,
        "table": "scenes",
        "positions": [["a", 0], ["b", 1]],
    }
    assert encode_mutation(MUTATIONS[2]) == {"type": "delete", "mid": 3, "table": "clips", "id": "c"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "must be a JSON object"),
        ({"type": "patch", "table": "scenes"}, "'mid' must be an integer"),
        ({"type": "patch", "mid": True, "table": "scenes"}, "'mid' must be an integer"),
        ({"type": "patch", "mid": 1, "table": 3}, "'table' must be a string"),
        ({"type": "patch", "mid": 1, "table": "scenes", "id": "s", "set": []}, "'set' must be an object"),
        ({"type": "delete", "mid": 1, "table": "scenes"}, "'id' must be a string"),
        ({"type": "reordered", "mid": 1, "table": "scenes", "positions": {}}, "'positions' must be a list"),
        ({"type": "reordered", "mid": 1, "table": "scenes", "positions": [["a", "0"]]}, "[id, integer]"),
        ({"type": "reordered", "mid": 1, "table": "scenes", "positions": [["a", False]]}, "[id, integer]"),
        ({"type": "rename", "mid": 1, "table": "scenes"}, "unknown mutation type 'rename'"),
    ],
)
def test_decode_refuses_what_encode_never_writes(data: JsonValue, words: str) -> None:
    """A damaged journal object is refused with the reason."""
    with pytest.raises(ValueError, match=re.escape(words)):
        decode_mutation(data)


def test_entry_mid_must_match() -> None:
    """An entry's mid is its mutation's mid."""
    entry = JournalEntry(ProjectId("p"), ClientId("c"), 3, Delete(3, "clips", RowId("x")))
    assert entry.mutation_id == ("c", 3)
    with pytest.raises(ValueError, match="differs"):
        JournalEntry(ProjectId("p"), ClientId("c"), 4, Delete(3, "clips", RowId("x")))
