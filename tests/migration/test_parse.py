"""Reading an export of the studio's Redux state: shapes, ids, and one clear message per bad file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from syncd.migration import NAMESPACE, ImportFileError, Outcome, parse_export
from syncd.rows import FIELD_DEPTH

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "redux-export.json"

SCENE = "0c1a9e7e-3f52-4c8e-9a4d-5b6c7d8e9f01"
CLIP = "0c1a9e7e-3f52-4c8e-9a4d-5b6c7d8e9fc1"
OWNER = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


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


def test_the_same_scene_twice_in_a_project() -> None:
    scenes = [{"id": "s1"}, {"id": "s2"}, {"id": "s1"}]
    assert refused(export({"id": "p1", "scenes": scenes})) == "projects[0].scenes[2].id: 's1' appears twice"


def test_the_same_clip_twice_in_a_project() -> None:
    clips = [{"id": "c1", "prompt": "one"}, {"id": "c1", "prompt": "two"}]
    assert refused(export({"id": "p1", "clips": clips})) == "projects[0].clips[1].id: 'c1' appears twice"


def test_one_uuid_in_two_cases_is_one_clip() -> None:
    clips = [{"id": CLIP.upper()}, {"id": CLIP}]
    assert refused(export({"id": "p1", "clips": clips})) == f"projects[0].clips[1].id: {CLIP!r} appears twice"


def test_the_same_clip_in_two_projects() -> None:
    """A row id is one row wherever it is in the file."""
    text = export({"id": "p0"}, {"id": "p1", "clips": [{"id": CLIP}]}, {"id": "p2", "clips": [{"id": CLIP}]})
    assert refused(text) == "projects[2].clips[0].id: the same clip as projects[1].clips[0]"


def test_the_same_scene_in_two_projects() -> None:
    text = export({"id": "p1", "scenes": [{"id": SCENE}]}, {"id": "p2", "scenes": [{"id": SCENE.upper()}]})
    assert refused(text) == "projects[1].scenes[0].id: the same scene as projects[0].scenes[0]"


def test_a_scene_and_a_clip_may_share_an_id() -> None:
    """Scenes and clips are rows of two tables: an id in both is two rows."""
    (project,) = parse_export(export({"id": "p1", "scenes": [{"id": SCENE}], "clips": [{"id": SCENE}]}))
    assert project.scenes[0]["id"] == project.clips[0]["id"] == SCENE


@pytest.mark.parametrize(
    ("project", "where"),
    [
        ({"id": "p\ud800"}, "projects[0].id"),
        ({"id": "p1", "scenes": [{"id": "s1"}, {"id": "\udfffs"}]}, "projects[0].scenes[1].id"),
        ({"id": "p1", "clips": [{"id": "c\ud800"}]}, "projects[0].clips[0].id"),
    ],
)
def test_an_id_with_a_lone_surrogate(project: dict[str, Any], where: str) -> None:
    """An id that cannot be encoded is named, not a traceback of the UUID derivation."""
    assert refused(export(project)).startswith(f"{where}: text holds a lone UTF-16 surrogate (")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "p1", "userId": None, "user_id": None}, "projects[0].user_id: the same field as 'userId'"),
        ({"id": "p1", "user_id": OWNER, "userId": OWNER}, "projects[0].userId: the same field as 'user_id'"),
        (
            {"id": "p1", "scenes": [{"id": "s1", "projectId": "p1", "project_id": "p2"}]},
            "projects[0].scenes[0].project_id: the same field as 'projectId'",
        ),
        (
            {
                "id": "p1",
                "scenes": [{"id": "s1"}],
                "clips": [{"id": "c1", "sceneId": "s1", "scene_id": None}],
            },
            "projects[0].clips[0].scene_id: the same field as 'sceneId'",
        ),
        (
            {"id": "p1", "aspectRatio": "1:1", "aspect_ratio": "1:1"},
            "projects[0].aspect_ratio: the same field as 'aspectRatio'",
        ),
    ],
)
def test_a_field_named_twice(row: dict[str, Any], message: str) -> None:
    """A field named in camelCase and in snake_case is refused, whatever the two values."""
    assert refused(export(row)) == message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"projects": [{"id": "p1", "id": "p2"}]}', "projects[0].id"),
        ('{"projects": [], "projects": [{"id": "p1"}]}', "projects"),
        (
            '{"projects": [{"id": "p1", "settings": {"a": [{"b": 1, "c": 2, "b": 3}]}}]}',
            "projects[0].settings.a[0].b",
        ),
        (
            '{"projects": [{"id": "p1", "clips": [{"id": "c1"}, {"id": "c2", "isDirty": 1, "isDirty": 2}]}]}',
            "projects[0].clips[1].isDirty",
        ),
    ],
)
def test_a_key_twice_in_an_object(text: str, where: str) -> None:
    """JSON readers differ on which of two values they keep, so the file does not say what it means."""
    assert refused(text) == f"{where}: the key appears twice in its object"


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"k": value}
    return value


def test_a_field_nested_as_deep_as_an_editor_may_send_it() -> None:
    (project,) = parse_export(export({"id": "p1", "settings": nested(FIELD_DEPTH)}))
    assert project.fields["settings"] == nested(FIELD_DEPTH)
    assert FIELD_DEPTH == 30


@pytest.mark.parametrize(
    ("project", "where"),
    [
        ({"id": "p1", "settings": nested(FIELD_DEPTH + 1)}, "projects[0].settings" + ".k" * FIELD_DEPTH),
        (
            {"id": "p1", "clips": [{"id": "c1", "metadata": {"a": [nested(FIELD_DEPTH)]}}]},
            "projects[0].clips[0].metadata.a.0" + ".k" * (FIELD_DEPTH - 2),
        ),
    ],
)
def test_a_field_nested_deeper_than_an_editor_may_send_it(project: dict[str, Any], where: str) -> None:
    """A frame carries a field two levels down, and the protocol allows 32 levels in all."""
    assert refused(export(project)) == f"{where}: nested deeper than 30 levels of arrays and objects"


@pytest.mark.parametrize(
    ("project", "where"),
    [
        ({"id": "p1", "title": "a\u0000b"}, "projects[0].title"),
        ({"id": "p1", "scenes": [{"id": "s1", "heading": "\u0000"}]}, "projects[0].scenes[0].heading"),
        (
            {"id": "p1", "clips": [{"id": "c1", "metadata": {"n": ["x\u0000"]}}]},
            "projects[0].clips[0].metadata.n.0",
        ),
        ({"id": "p1", "settings": {"k\u0000": 1}}, "projects[0].settings.k\\u0000"),
    ],
)
def test_a_nul_character_in_any_stored_text(project: dict[str, Any], where: str) -> None:
    """PostgreSQL cannot store NUL, in text or in jsonb."""
    message = refused(export(project))
    assert message.startswith(f"{where}: text holds a NUL character (")
    assert "\n" not in message


def test_the_report_line_of_a_project_created_without_rows() -> None:
    created = Outcome("p", "Empty", "created")
    assert created.line() == 'created  p  "Empty"  (the project alone, no scenes or clips)'
    assert Outcome("p", "Empty", "skipped").line() == 'skipped  p  "Empty"  (no change)'
