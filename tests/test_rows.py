"""Tests of syncd/rows.py: editor field validation and agreement with the core's schema."""

from __future__ import annotations

import uuid

import pytest

from syncd.core.schema import EDITABLE_FIELDS, READ_ONLY_FIELDS, TABLES
from syncd.errors import FieldError
from syncd.rows import FIELDS, ROWS, check_json, validate_insert, validate_set


def test_models_agree_with_core_schema() -> None:
    """The editable-fields models list exactly the fields the core lets editors change."""
    for table in TABLES:
        assert set(FIELDS[table].model_fields) == EDITABLE_FIELDS[table], table
        row_fields = set(ROWS[table].model_fields)
        assert EDITABLE_FIELDS[table] <= row_fields
        assert row_fields - EDITABLE_FIELDS[table] <= READ_ONLY_FIELDS


def test_patch_returns_only_given_fields() -> None:
    """A valid patch comes back as exactly the fields it set."""
    assert validate_set("scenes", {"heading": "Dawn", "duration": 2}) == {"heading": "Dawn", "duration": 2.0}
    assert validate_set("clips", {"trim_end": None}) == {"trim_end": None}


@pytest.mark.parametrize(
    ("table", "values", "message"),
    [
        ("scenes", {}, "set: must name at least one field"),
        ("scenes", {"version": 3}, "set.version: read-only"),
        ("scenes", {"colour": "red"}, "set.colour: no such field in scenes"),
        ("scenes", {"duration": "2"}, "set.duration: Input should be a valid number"),
        ("scenes", {"duration": -1}, "set.duration: Input should be greater than or equal to 0"),
        ("clips", {"status": "done"}, "set.status: Input should be 'pending'"),
        ("clips", {"scene_id": "nope"}, "set.scene_id: must be a UUID"),
        ("projects", {"title": 5}, "set.title: Input should be a valid string"),
        ("projects", {"project_id": str(uuid.uuid4())}, "set.project_id: read-only"),
    ],
)
def test_bad_patch_names_the_field(table: str, values: dict[str, object], message: str) -> None:
    """A wrong patch raises FieldError naming the field and the problem."""
    with pytest.raises(FieldError) as caught:
        validate_set(table, values)  # type: ignore[arg-type]
    assert message in caught.value.message


def test_insert_fills_defaults() -> None:
    """An insert with only id and index gets every other column's default."""
    row_id = str(uuid.uuid4())
    row = validate_insert("scenes", {"id": row_id.upper(), "scene_index": 3})
    assert row == {
        "id": row_id,
        "scene_index": 3,
        "heading": "",
        "body": "",
        "duration": 0.0,
        "voice_id": None,
    }


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"scene_index": 1}, "row.id: required"),
        ({"id": 7}, "row.id: must be a UUID"),
        ({"id": str(uuid.uuid4()), "version": 1}, "row.version: read-only"),
        (
            {"id": str(uuid.uuid4()), "order_index": -2},
            "row.order_index: Input should be greater",
        ),
    ],
)
def test_bad_insert(row: dict[str, object], message: str) -> None:
    """A wrong insert raises FieldError naming the field."""
    with pytest.raises(FieldError) as caught:
        validate_insert("clips", row)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("table", "values", "message"),
    [
        ("projects", {"settings": {"fps": float("nan")}}, "set.settings.fps: not a finite number"),
        ("projects", {"settings": {"a": [{"b": float("-inf")}]}}, "set.settings.a.0.b: not a finite number"),
        ("projects", {"settings": {"\udfff": 1}}, "set.settings.\\udfff: text holds a lone UTF-16 surrogate"),
        ("projects", {"\udfff": 1}, "set.\\udfff: text holds a lone UTF-16 surrogate"),
        (
            "scenes",
            {"body": "ok \ud800"},
            "set.body: text holds a lone UTF-16 surrogate (\\ud800 at character 3)",
        ),
        ("scenes", {"heading": "a\x00b"}, "set.heading: text holds a NUL character (\\u0000 at character 1)"),
        ("projects", {"settings": {"k\x00": 1}}, "set.settings.k\\u0000: text holds a NUL character"),
        ("clips", {"metadata": {"seed": 2**53}}, "set.metadata.seed: integer out of the JSON-safe range"),
        ("clips", {"metadata": {"seed": -(2**53)}}, "set.metadata.seed: integer out of the JSON-safe range"),
        ("clips", {"duration": 10**400}, "set.duration: integer out of the JSON-safe range"),
    ],
)
def test_patch_values_must_be_portable_json(table: str, values: dict[str, object], message: str) -> None:
    """NaN, Infinity, lone surrogates, NULs and unsafe integers are refused at any depth, naming the path."""
    with pytest.raises(FieldError) as caught:
        validate_set(table, values)  # type: ignore[arg-type]
    assert caught.value.message.startswith(message)


def test_insert_values_must_be_portable_json() -> None:
    """An insert's row is held to the same rules as a patch's values."""
    row_id = str(uuid.uuid4())
    with pytest.raises(FieldError, match=r"^row\.metadata\.x\.1: not a finite number"):
        validate_insert("clips", {"id": row_id, "metadata": {"x": [1, float("inf")]}})
    with pytest.raises(FieldError, match=r"^row\.prompt: text holds a lone UTF-16 surrogate"):
        validate_insert("clips", {"id": row_id, "prompt": "\udc00"})
    row = validate_insert("clips", {"id": row_id, "metadata": {"seed": 2**53 - 1, "emoji": "🎬"}})
    assert row["metadata"] == {"seed": 2**53 - 1, "emoji": "🎬"}


def test_check_json_counts_levels_and_refuses_other_types() -> None:
    """Depth counts the value itself as level 1; values JSON cannot hold are refused by type."""
    check_json([[1]], "v", max_depth=2)
    with pytest.raises(FieldError, match=r"^v\.0\.0: nested deeper than 2 levels"):
        check_json([[[1]]], "v", max_depth=2)
    with pytest.raises(FieldError, match=r"^v\.k: bytes is not a JSON value"):
        check_json({"k": b"x"}, "v")
    check_json({"big": 10**30}, "v")  # no integer bound unless asked for
