"""Reading an export of the studio's Redux state: shapes, ids, and one clear message per bad file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from syncd.migration import NAMESPACE, ImportFileError, parse_export

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "redux-export.json"


def export(*projects: dict[str, Any]) -> str:
    return json.dumps({"projects": list(projects)})


def refused(text: str) -> str:
    with pytest.raises(ImportFileError) as caught:
        parse_export(text)
    return str(caught.value)


def test_the_example_reads_with_uuids_kept_and_other_ids_derived() -> None:
    harbour, trailer, owned = parse_export(EXAMPLE.read_text())
    assert harbour.id == "7c1e2a4b-5d6f-4a8b-9c0d-1e2f3a4b5c6d"
    assert harbour.fields["aspect_ratio"] == "16:9"
    assert harbour.clips[0]["scene_id"] == harbour.scenes[0]["id"]
    assert harbour.clips[0]["file_url"] == "https://cdn.example.com/clips/harbour-1.mp4"
    assert trailer.id == str(uuid.uuid5(NAMESPACE, "projects/anonymous/trailer-42"))
    assert trailer.id == "5039f349-9f25-5f13-84b0-4edca8367725"  # as docs/migration.md shows it
    assert trailer.scenes[1]["id"] == str(uuid.uuid5(NAMESPACE, f"projects/{trailer.id}/scenes/s2"))
    assert [s["scene_index"] for s in trailer.scenes] == [0, 1, 2]  # positions when the file has none
    assert [c["order_index"] for c in trailer.clips] == [0, 1, 2, 3]
    assert trailer.clips[2]["scene_id"] == trailer.scenes[2]["id"]
    assert trailer.clips[3]["scene_id"] is None
    assert "is_dirty" not in trailer.fields  # UI state of the studio is not a column
    assert owned.user_id == "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
    assert owned.clips[0]["trim_start"] == 0.5
    # The same file gives the same ids every time.
    assert [p.id for p in parse_export(EXAMPLE.read_text())] == [harbour.id, trailer.id, owned.id]


def test_the_same_short_ids_of_two_users_make_two_projects() -> None:
    """Short ids derive from the owner too, so two browsers' "p1" never meet."""
    rows = {"scenes": [{"id": "s1"}], "clips": [{"id": "c1"}]}
    alice, bob, nobody = (
        parse_export(export({"id": "p1", "userId": user, **rows}))[0]
        for user in ("AAAAAAAA-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", None)
    )
    assert alice.id == str(uuid.uuid5(NAMESPACE, "projects/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/p1"))
    assert nobody.id == str(uuid.uuid5(NAMESPACE, "projects/anonymous/p1"))
    assert len({alice.id, bob.id, nobody.id}) == 3
    assert len({p.scenes[0]["id"] for p in (alice, bob, nobody)}) == 3
    assert len({p.clips[0]["id"] for p in (alice, bob, nobody)}) == 3
    assert alice.clips[0]["id"] == str(uuid.uuid5(NAMESPACE, f"projects/{alice.id}/clips/c1"))


def test_not_json() -> None:
    assert refused('{"projects": [') == "not JSON (line 1 column 15: Expecting value)"


def test_not_an_export() -> None:
    assert refused("[1, 2]") == 'the file must be a JSON object with a "projects" array'


def test_a_scene_outside_any_project() -> None:
    text = json.dumps({"projects": [], "scenes": [{"id": "s1"}]})
    assert refused(text) == "scenes: every scene must be inside its project's 'scenes' array"


def test_a_scene_that_names_another_project() -> None:
    text = export({"id": "p1", "scenes": [{"id": "s1", "projectId": "p2"}]})
    assert refused(text) == "projects[0].scenes[0].projectId: the row is inside project 'p1' but names 'p2'"


def test_a_clip_pointing_at_a_missing_scene() -> None:
    good = {"id": "p0", "title": "fine"}
    bad = {"id": "p1", "scenes": [{"id": "s1"}], "clips": [{"id": "c1", "sceneId": "s9"}]}
    assert (
        refused(export(good, good | {"id": "p2"}, bad))
        == 'projects[2].clips[0].sceneId: no scene "s9" in this project'
    )


def test_a_wrongly_typed_field_is_named_with_the_files_key() -> None:
    text = export({"id": "p1", "scenes": [{"id": "s1", "sceneIndex": "first"}]})
    assert refused(text).startswith("projects[0].scenes[0].sceneIndex: ")


def test_a_row_without_an_id() -> None:
    assert (
        refused(export({"id": "p1", "clips": [{"prompt": "x"}]}))
        == "projects[0].clips[0].id: required, a string"
    )


def test_the_same_project_twice() -> None:
    assert refused(export({"id": "p1"}, {"id": "p1"})) == "projects[1].id: the same project as projects[0]"


def test_a_user_id_that_is_not_a_uuid() -> None:
    assert refused(export({"id": "p1", "userId": "bob"})) == "projects[0].userId: must be a UUID or null"
