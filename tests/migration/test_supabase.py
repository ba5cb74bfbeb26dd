"""``syncd import`` in Supabase mode, against the stand-in: created, re-imported with no change, and a
bad file writes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from syncd.migration import parse_export
from tests.supabase_mode.conftest import Stack, stack, syncd_cli

__all__ = ["stack"]  # the fixture, imported for these tests

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "redux-export.json"


async def test_import_and_reimport_in_supabase_mode(stack: Stack, tmp_path: Path) -> None:
    state = tmp_path / "state"
    harbour, trailer, owned = parse_export(EXAMPLE.read_text())
    # In Supabase mode a project's owner must be a user of the project's auth.
    await stack.pool.execute("insert into auth.users (id) values ($1)", owned.user_id)
    code, out, err = await syncd_cli(stack.env(), state, "import", str(EXAMPLE))
    assert code == 0, err
    assert out.splitlines()[-1] == "3 projects: 3 created, 0 updated, 0 skipped"
    rows = await stack.db_rows(trailer.id)
    assert rows["projects"][trailer.id]["title"] == "Product trailer (vertical)"
    assert (len(rows["scenes"]), len(rows["clips"])) == (3, 4)
    owner = await stack.pool.fetchval("select user_id::text from public.projects where id = $1", owned.id)
    assert owner == owned.user_id
    clip = (await stack.db_rows(harbour.id))["clips"][harbour.clips[0]["id"]]
    assert clip["scene_id"] == harbour.scenes[0]["id"]

    code, out, err = await syncd_cli(stack.env(), state, "import", str(EXAMPLE))
    assert code == 0, err
    assert out.splitlines()[-1] == "3 projects: 0 created, 0 updated, 3 skipped"
    assert await stack.db_rows(trailer.id) == rows


async def test_a_bad_file_writes_nothing_in_supabase_mode(stack: Stack, tmp_path: Path) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["projects"][1]["clips"][0]["sceneId"] = "s9"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    before = await stack.pool.fetchval("select count(*) from public.projects")
    code, _, err = await syncd_cli(stack.env(), tmp_path / "state", "import", str(bad))
    assert code == 1
    assert err == f'syncd: {bad}: projects[1].clips[0].sceneId: no scene "s9" in this project\n'
    assert await stack.pool.fetchval("select count(*) from public.projects") == before


async def test_the_file_is_checked_against_the_database_before_anything_is_written(
    stack: Stack, tmp_path: Path
) -> None:
    """A project of another owner, or a clip id that another project holds, refuses the whole file."""
    alice, bob, owned, clip = (str(uuid.uuid4()) for _ in range(4))
    await stack.pool.executemany("insert into auth.users (id) values ($1)", [(alice,), (bob,)])
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"projects": [{"id": owned, "userId": alice, "clips": [{"id": clip}]}]}))
    code, _, err = await syncd_cli(stack.env(), tmp_path / "state", "import", str(first))
    assert code == 0, err
    before = await stack.pool.fetchval("select count(*) from public.projects")
    bad = tmp_path / "bad.json"
    cases = [
        (
            {"id": owned, "userId": bob},
            f"projects[1]: project {owned} belongs to {alice} in the store but to {bob} in the file;"
            " an import never changes a project's owner",
        ),
        (
            {"id": "p1", "clips": [{"id": clip}]},
            f"projects[1].clips[0].id: the store holds clip {clip} in another project, {owned}",
        ),
    ]
    for project, message in cases:
        bad.write_text(json.dumps({"projects": [{"id": "p0", "title": "not written"}, project]}))
        for dry_run in ((), ("--dry-run",)):
            code, out, err = await syncd_cli(stack.env(), tmp_path / "state", "import", str(bad), *dry_run)
            assert (code, out, err) == (1, "", f"syncd: {bad}: {message}\n")
    assert await stack.pool.fetchval("select count(*) from public.projects") == before
