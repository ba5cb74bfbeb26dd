"""``syncd import`` in local mode: the example export is imported, re-imported with no change, updated,
and opened by an editor; a bad file writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.client import EditorClient
from syncd.migration import parse_export
from tests.support.daemon import DaemonProcess, run_syncd
from tests.support.store import query, store_rows

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "redux-export.json"


ALICE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
BOB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
OWNED = "0c1a9e7e-3f52-4c8e-9a4d-5b6c7d8e9f00"
CLIP = "0c1a9e7e-3f52-4c8e-9a4d-5b6c7d8e9fc1"


def project_count(state_dir: Path) -> int:
    return int(query(state_dir / "store.db", "select count(*) from projects")[0][0])


def write_export(path: Path, *projects: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"projects": list(projects)}))
    return path


def test_import_then_reimport_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run_syncd(state, "import", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "3 projects: 3 created, 0 updated, 0 skipped"
    _, trailer, owned = parse_export(EXAMPLE.read_text())
    assert len(store_rows(state, "scenes", trailer.id)) == 3
    assert len(store_rows(state, "clips", trailer.id)) == 4
    assert store_rows(state, "projects", owned.id)[owned.id]["user_id"] == owned.user_id
    versions = {r["id"]: r["version"] for r in query(state / "store.db", "select id, version from clips")}

    again = run_syncd(state, "import", str(EXAMPLE))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "3 projects: 0 created, 0 updated, 3 skipped"
    assert {
        r["id"]: r["version"] for r in query(state / "store.db", "select id, version from clips")
    } == versions
    assert project_count(state) == 3


def test_a_changed_export_updates_and_adds_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run_syncd(state, "import", str(EXAMPLE)).returncode == 0
    data = json.loads(EXAMPLE.read_text())
    trailer = data["projects"][1]
    trailer["scenes"][0]["heading"] = "Hook, shorter"
    trailer["clips"].append({"id": "c5", "sceneId": "s2", "prompt": "A second angle of the demo"})
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    trailer_id = parse_export(changed.read_text())[1].id

    dry = run_syncd(state, "import", str(changed), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        f'updated  {trailer_id}  "Product trailer (vertical)"  (1 clip added, 1 scene changed)' in dry.stdout
    )
    assert dry.stdout.splitlines()[-1].endswith("(dry run: nothing written)")
    assert len(store_rows(state, "clips", trailer_id)) == 4

    real = run_syncd(state, "import", str(changed))
    assert real.stdout.splitlines()[-1] == "3 projects: 0 created, 1 updated, 2 skipped"
    scenes = sorted(store_rows(state, "scenes", trailer_id).values(), key=lambda r: r["scene_index"])
    assert (scenes[0]["heading"], scenes[0]["version"], scenes[1]["version"]) == ("Hook, shorter", 2, 1)
    assert len(store_rows(state, "clips", trailer_id)) == 5


def test_a_dry_run_creates_no_store_and_leaves_one_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "state"
    dry = run_syncd(state, "import", str(EXAMPLE), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        dry.stdout.splitlines()[-1]
        == "3 projects: 3 created, 0 updated, 0 skipped (dry run: nothing written)"
    )
    assert not state.exists()

    assert run_syncd(state, "import", str(EXAMPLE)).returncode == 0
    files = {path.name: path.read_bytes() for path in state.iterdir()}
    dry = run_syncd(state, "import", str(EXAMPLE), "--dry-run")
    assert (
        dry.stdout.splitlines()[-1]
        == "3 projects: 0 created, 0 updated, 3 skipped (dry run: nothing written)"
    )
    assert {path.name: path.read_bytes() for path in state.iterdir()} == files


def test_a_file_that_starts_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.read_bytes())
    result = run_syncd(tmp_path / "state", "import", str(bom), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("3 projects: 3 created")


def test_a_bad_file_gets_one_message_and_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = json.loads(EXAMPLE.read_text())
    data["projects"][2]["clips"][0]["scene_id"] = "s9"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = run_syncd(state, "import", str(bad))
    assert result.returncode == 1
    assert result.stderr == f'syncd: {bad}: projects[2].clips[0].scene_id: no scene "s9" in this project\n'
    assert result.stdout == ""
    assert not (state / "store.db").exists()  # the file was refused before the store was opened

    bad.write_text("{not json")
    result = run_syncd(state, "import", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"syncd: {bad}: not JSON (line 1 column 2")


def test_two_users_with_the_same_short_ids_get_a_project_each(tmp_path: Path) -> None:
    state = tmp_path / "state"
    alice = write_export(
        tmp_path / "alice.json",
        {"id": "p1", "userId": ALICE, "title": "Alice's film", "scenes": [{"id": "s1", "heading": "A"}]},
    )
    bob = write_export(
        tmp_path / "bob.json",
        {"id": "p1", "userId": BOB, "title": "Bob's pitch", "scenes": [{"id": "s1", "heading": "B"}]},
    )
    assert run_syncd(state, "import", str(alice)).returncode == 0
    result = run_syncd(state, "import", str(bob))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 project: 1 created, 0 updated, 0 skipped"
    (alices,) = parse_export(alice.read_text())
    (bobs,) = parse_export(bob.read_text())
    assert store_rows(state, "projects", alices.id)[alices.id]["title"] == "Alice's film"
    assert [r["heading"] for r in store_rows(state, "scenes", alices.id).values()] == ["A"]
    assert store_rows(state, "projects", bobs.id)[bobs.id]["user_id"] == BOB


def test_every_error_of_an_import_starts_with_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the state folder should be")
    result = run_syncd(state, "import", str(EXAMPLE))
    assert result.returncode == 1
    assert result.stderr.startswith(f"syncd: {EXAMPLE}: cannot make the store's folder {state}: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_project_of_another_owner_refuses_the_whole_file_and_a_dry_run_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    owned = {"id": OWNED, "userId": ALICE, "title": "Alice's film"}
    assert run_syncd(state, "import", str(write_export(tmp_path / "alice.json", owned))).returncode == 0
    before = query(state / "store.db", "select * from projects")
    for owner, shown in ((BOB, BOB), (None, "no user")):
        bad = write_export(tmp_path / "bad.json", {"id": "new", "title": "N"}, owned | {"userId": owner})
        for dry_run in ((), ("--dry-run",)):
            result = run_syncd(state, "import", str(bad), *dry_run)
            assert (result.returncode, result.stdout) == (1, "")
            assert result.stderr == (
                f"syncd: {bad}: projects[1]: project {OWNED} belongs to {ALICE} in the store but to {shown}"
                " in the file; an import never changes a project's owner\n"
            )
    assert query(state / "store.db", "select * from projects") == before


def test_a_row_id_that_the_store_holds_in_another_project_refuses_the_whole_file(tmp_path: Path) -> None:
    """The store may hold projects that the file does not name; their rows are theirs."""
    state = tmp_path / "state"
    first = write_export(tmp_path / "first.json", {"id": OWNED, "clips": [{"id": CLIP, "prompt": "mine"}]})
    assert run_syncd(state, "import", str(first)).returncode == 0
    before = {t: query(state / "store.db", f"select * from {t}") for t in ("projects", "clips")}  # noqa: S608
    bad = write_export(
        tmp_path / "bad.json",
        {"id": "p0", "title": "written first, before"},
        {"id": "p1", "scenes": [{"id": "s1"}], "clips": [{"id": "c1"}, {"id": CLIP, "prompt": "theirs"}]},
    )
    for dry_run in ((), ("--dry-run",)):
        result = run_syncd(state, "import", str(bad), *dry_run)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"syncd: {bad}: projects[1].clips[1].id: the store holds clip {CLIP} in another project,"
            f" {OWNED}\n"
        )
    assert {t: query(state / "store.db", f"select * from {t}") for t in ("projects", "clips")} == before  # noqa: S608


async def test_imported_projects_open_in_the_daemon_and_its_inspector(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run_syncd(state, "import", str(EXAMPLE)).returncode == 0
    trailer = parse_export(EXAMPLE.read_text())[1]
    daemon = DaemonProcess(state).start()
    try:
        async with EditorClient(daemon.url, trailer.id) as editor:
            assert [row["heading"] for row in editor.view.ordered("scenes")] == [
                "Hook",
                "Demo",
                "Call to action",
            ]
            listing = json.loads(await daemon.get("/v1/inspector/projects"))
        titles = {p["id"]: p["title"] for p in listing["projects"]}
        assert titles[trailer.id] == "Product trailer (vertical)"
        assert len(titles) == 3  # the demo is made only for an empty store
    finally:
        daemon.stop()


async def test_an_import_while_the_daemon_runs_reaches_the_open_projects(tmp_path: Path) -> None:
    """The embedded store has no change feed: an import made while the daemon runs was out of sight of
    the projects it had open (their editors, and the live view a renderer reads) until they were
    opened again; the daemon now sees another process's writes and reads its open projects again."""
    state = tmp_path / "state"
    daemon = DaemonProcess(state).start()
    try:
        async with EditorClient(daemon.url, daemon.project_id) as editor:
            assert editor.view.project is not None
            headings = [row["heading"] for row in editor.view.ordered("scenes")]
            renamed = {"id": daemon.project_id, "title": "Renamed by an import", "scenes": [], "clips": []}
            imported = run_syncd(state, "import", str(write_export(tmp_path / "e.json", renamed)))
            assert imported.stdout.splitlines()[-1] == "1 project: 0 created, 1 updated, 0 skipped"
            await editor.wait_until(
                lambda: editor.view.project is not None and editor.view.project["title"] == renamed["title"]
            )
            assert [row["heading"] for row in editor.view.ordered("scenes")] == headings
    finally:
        daemon.stop()
