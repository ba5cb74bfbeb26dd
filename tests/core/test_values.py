"""Rows: their version, and the copy editors see."""

import pytest

from syncd.core.values import JsonValue, row_version, visible


def test_row_version() -> None:
    """A row's version is its integer ``version`` field."""
    assert row_version({"id": "x", "version": 7}) == 7


@pytest.mark.parametrize("row", [{"id": "x"}, {"id": "x", "version": "7"}, {"id": "x", "version": True}])
def test_row_without_integer_version(row: dict[str, object]) -> None:
    """A row without an integer version is an adapter bug."""
    with pytest.raises(ValueError, match="'x' has no integer version"):
        row_version(row)  # type: ignore[arg-type]


def test_visible_drops_version_and_copies() -> None:
    """Editors see every field but ``version``, in a copy of their own."""
    row: dict[str, JsonValue] = {"id": "x", "heading": "h", "version": 3}
    seen = visible(row)
    assert seen == {"id": "x", "heading": "h"}
    seen["heading"] = "changed"
    assert row["heading"] == "h"
    assert visible({"id": "y"}) == {"id": "y"}
