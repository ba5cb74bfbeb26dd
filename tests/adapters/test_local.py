"""Tests of syncd/adapters/local.py: the embedded store and its apply semantics."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from syncd.adapters.local import LocalBackend
from syncd.adapters.sqlite_schema import DDL, FORMAT, migrate
from syncd.core.ids import ProjectId
from syncd.errors import StartupError, WriteError
from tests.support.store import held_open


def new_id() -> str:
    return str(uuid.uuid4())


def batch(project_id: str, ops: list[dict[str, Any]], mutations: list[list[Any]]) -> dict[str, Any]:
    return {"project_id": project_id, "ops": ops, "mutations": mutations}


async def test_create_and_load(tmp_path: Path) -> None:
    """A created project loads with its defaults, no scenes and no clips."""
    async with LocalBackend(tmp_path / "s.db") as store:
        project = await store.create_project("Film")
        loaded = await store.read_project(project["id"])
    assert loaded["project"]["title"] == "Film"
    assert loaded["project"]["version"] == 1
    assert loaded["project"]["settings"] == {}
    assert loaded["project"]["user_id"] is None
    assert loaded["scenes"] == []
    assert loaded["clips"] == []


async def test_unknown_project_loads_as_none(tmp_path: Path) -> None:
    """Loading a project that does not exist gives None, not an empty project."""
    async with LocalBackend(tmp_path / "s.db") as store:
        loaded = await store.read_project(new_id())
        owner = await store.project_owner(ProjectId(new_id()))
    assert loaded["project"] is None
    assert owner == (False, None)


async def test_apply_insert_update_delete(tmp_path: Path) -> None:
    """A batch inserts with defaults, patches fields with one version step, and deletes."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p = (await store.create_project("Film"))["id"]
        s1, s2 = new_id(), new_id()
        out = await store.apply_encoded(
            batch(
                p,
                [
                    {"op": "insert", "table": "scenes", "id": s1, "row": {"scene_index": 0}, "by": [c, 1]},
                    {"op": "insert", "table": "scenes", "id": s2, "row": {"scene_index": 1}, "by": [c, 2]},
                ],
                [[c, 1], [c, 2]],
            )
        )
        assert sorted(r["row"]["id"] for r in out["rows"]) == sorted([s1, s2])
        assert all(r["row"]["version"] == 1 and r["row"]["heading"] == "" for r in out["rows"])
        out = await store.apply_encoded(
            batch(
                p,
                [
                    {
                        "op": "update",
                        "table": "scenes",
                        "id": s1,
                        "set": {
                            "heading": {"value": "Dawn", "by": [c, 3]},
                            "body": {"value": "b", "by": [c, 4]},
                        },
                    },
                    {"op": "delete", "table": "scenes", "id": s2, "by": [c, 5]},
                    {
                        "op": "update",
                        "table": "projects",
                        "id": p,
                        "set": {"settings": {"value": {"fps": 24}, "by": [c, 6]}},
                    },
                ],
                [[c, 3], [c, 4], [c, 5], [c, 6]],
            )
        )
        rows = {r["row"]["id"]: r["row"] for r in out["rows"]}
        assert rows[s1]["heading"] == "Dawn"
        assert rows[s1]["version"] == 2
        assert rows[p]["settings"] == {"fps": 24}
        assert out["missing"] == [{"table": "scenes", "id": s2}]
        loaded = await store.read_project(p)
    assert [s["id"] for s in loaded["scenes"]] == [s1]
    assert loaded["project"]["version"] == 2


async def test_replayed_batch_applies_nothing_twice(tmp_path: Path) -> None:
    """The same batch applied twice changes nothing the second time: no version step, no lost later write."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p = (await store.create_project("Film"))["id"]
        s = new_id()
        insert = batch(p, [{"op": "insert", "table": "scenes", "id": s, "row": {}, "by": [c, 1]}], [[c, 1]])
        await store.apply_encoded(insert)
        patch = batch(
            p,
            [{"op": "update", "table": "scenes", "id": s, "set": {"heading": {"value": "A", "by": [c, 2]}}}],
            [[c, 2]],
        )
        await store.apply_encoded(patch)
        other = batch(
            p,
            [
                {
                    "op": "update",
                    "table": "scenes",
                    "id": s,
                    "set": {"heading": {"value": "B", "by": ["o", 1]}},
                }
            ],
            [["o", 1]],
        )
        await store.apply_encoded(other)
        again = await store.apply_encoded(patch)
        await store.apply_encoded(insert)
    assert again["rows"][0]["row"]["heading"] == "B"
    assert again["rows"][0]["row"]["version"] == 3


async def test_replayed_delete_does_not_touch_reinserted_row(tmp_path: Path) -> None:
    """A delete whose mutation is recorded is skipped when the batch is replayed."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p = (await store.create_project("Film"))["id"]
        s = new_id()
        await store.apply_encoded(
            batch(p, [{"op": "insert", "table": "clips", "id": s, "row": {}, "by": [c, 1]}], [[c, 1]])
        )
        delete = batch(p, [{"op": "delete", "table": "clips", "id": s, "by": [c, 2]}], [[c, 2]])
        await store.apply_encoded(delete)
        await store.apply_encoded(
            batch(p, [{"op": "insert", "table": "clips", "id": s, "row": {}, "by": [c, 3]}], [[c, 3]])
        )
        await store.apply_encoded(delete)
        loaded = await store.read_project(p)
    assert [x["id"] for x in loaded["clips"]] == [s]


async def test_rows_of_other_projects_are_untouchable(tmp_path: Path) -> None:
    """An update naming a row of another project is reported missing and changes nothing."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p1 = (await store.create_project("One"))["id"]
        p2 = (await store.create_project("Two"))["id"]
        s = new_id()
        await store.apply_encoded(
            batch(p1, [{"op": "insert", "table": "scenes", "id": s, "row": {}, "by": [c, 1]}], [[c, 1]])
        )
        out = await store.apply_encoded(
            batch(
                p2,
                [
                    {
                        "op": "update",
                        "table": "scenes",
                        "id": s,
                        "set": {"heading": {"value": "x", "by": [c, 2]}},
                    }
                ],
                [[c, 2]],
            )
        )
        loaded = await store.read_project(p1)
    assert out["missing"] == [{"table": "scenes", "id": s}]
    assert loaded["scenes"][0]["heading"] == ""


async def test_constraint_violation_is_not_retryable_and_rolls_back(tmp_path: Path) -> None:
    """A batch that breaks a check fails whole, not retryable, and leaves the store as it was."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p = (await store.create_project("Film"))["id"]
        s = new_id()
        bad = batch(
            p,
            [
                {"op": "insert", "table": "scenes", "id": s, "row": {}, "by": [c, 1]},
                {
                    "op": "update",
                    "table": "projects",
                    "id": p,
                    "set": {"status": {"value": "bogus", "by": [c, 2]}},
                },
            ],
            [[c, 1], [c, 2]],
        )
        with pytest.raises(WriteError) as caught:
            await store.apply_encoded(bad)
        loaded = await store.read_project(p)
    assert caught.value.retryable is False
    assert loaded["scenes"] == []
    assert loaded["project"]["version"] == 1


async def test_a_full_disk_is_named_and_the_store_takes_writes_again_once_there_is_room(
    tmp_path: Path,
) -> None:
    """SQLite rolls back a transaction by itself when the disk is full; rolling back again raised "no
    transaction is active", which hid the reason. The error names it, is retryable, and the next batch
    goes in once there is room (``max_page_count`` plays the full disk)."""
    c = new_id()
    async with LocalBackend(tmp_path / "s.db") as store:
        p = (await store.create_project("Film"))["id"]
        pages = await store.run(lambda db: db.execute("pragma page_count").fetchone()[0])
        await store.run(lambda db: db.execute(f"pragma max_page_count = {pages}"))
        scene = new_id()
        big = batch(
            p,
            [{"op": "insert", "table": "scenes", "id": scene, "row": {"body": "x" * 100_000}, "by": [c, 1]}],
            [[c, 1]],
        )
        with pytest.raises(WriteError) as caught:
            await store.apply_encoded(big)
        assert caught.value.retryable is True
        assert str(caught.value) == "store busy or failing: database or disk is full"
        await store.run(lambda db: db.execute("pragma max_page_count = 1073741823"))
        await store.apply_encoded(big)
        loaded = await store.read_project(p)
    assert [s["id"] for s in loaded["scenes"]] == [scene]


async def test_store_is_durable_and_in_wal_mode(tmp_path: Path) -> None:
    """What was applied is in the file after the store is closed, and the file is in WAL mode."""
    path = tmp_path / "s.db"
    async with LocalBackend(path) as store:
        p = (await store.create_project("Kept"))["id"]
    with sqlite3.connect(path) as db:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert db.execute("select title from projects where id = ?", (p,)).fetchone()[0] == "Kept"
    async with LocalBackend(path) as store:
        projects = await store.list_projects()
    assert [x["id"] for x in projects] == [p]


def _key_of_mutations(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        info = db.execute("pragma table_info(syncd_mutations)").fetchall()
    return [name for _, name, _, _, _, pk in sorted(info, key=lambda c: c[5]) if pk > 0]


@pytest.mark.parametrize("old_key", ["client_id, mid", "project_id, client_id, mid"])
async def test_a_store_with_a_row_per_mutation_is_migrated(tmp_path: Path, old_key: str) -> None:
    """An earlier store's syncd_mutations, a row per mutation under either earlier key, becomes each
    client's highest mid per project, with when it was applied, once; what was applied stays applied."""
    path = tmp_path / "s.db"
    old_ddl = DDL.replace("primary key (project_id, client_id)", f"primary key ({old_key})")
    assert old_ddl != DDL
    p, q = new_id(), new_id()
    with sqlite3.connect(path) as db:
        db.executescript(old_ddl)
        db.execute("create index syncd_mutations_applied_idx on syncd_mutations (applied_at)")
        db.executemany("insert into projects (id) values (?)", [(p,), (q,)])
        db.executemany(
            "insert into syncd_mutations (project_id, client_id, mid, applied_at) values (?, ?, ?, ?)",
            [
                (p, "c", 1, "2026-01-01T00:00:00.000+00:00"),
                (p, "c", 4, "2026-01-02T00:00:00.000+00:00"),
                (p, "c", 3, "2026-01-03T00:00:00.000+00:00"),
                (p, "d", 2, "2026-01-04T00:00:00.000+00:00"),
            ],
        )
    assert _key_of_mutations(path) == old_key.split(", ")

    async with LocalBackend(path) as store:
        assert (await store.read_project(p))["applied"] == {"c": 4, "d": 2}
        # c's mid 1 is still applied in p (a replay inserts nothing); the same pair in q is new there.
        s = new_id()
        op = {"op": "insert", "table": "scenes", "id": s, "row": {"id": s}, "by": ["c", 1]}
        await store.apply_encoded(batch(p, [op], [["c", 1]]))
        assert (await store.read_project(p))["scenes"] == []
        await store.apply_encoded(batch(q, [op], [["c", 1]]))
        assert [row["id"] for row in (await store.read_project(q))["scenes"]] == [s]
    assert _key_of_mutations(path) == ["project_id", "client_id"]
    with sqlite3.connect(path) as db:
        kept = db.execute("select project_id, client_id, mid, applied_at from syncd_mutations").fetchall()
        indexes = {row[1] for row in db.execute("pragma index_list(syncd_mutations)")}
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert {row for row in kept if row[0] == p} == {
        (p, "c", 4, "2026-01-02T00:00:00.000+00:00"),
        (p, "d", 2, "2026-01-04T00:00:00.000+00:00"),
    }
    assert [row[:3] for row in kept if row[0] == q] == [(q, "c", 1)]
    assert "syncd_mutations_applied_idx" not in indexes
    assert "syncd_mutations_old" not in tables
    with sqlite3.connect(path) as db:
        assert migrate(db) is False
        assert db.execute("pragma user_version").fetchone()[0] == FORMAT


async def test_a_store_that_cannot_be_set_up_is_refused_and_left_closed(tmp_path: Path) -> None:
    """A failure after the format check (here: a projects table without the column an index needs) is
    an error naming the file, and the file is no longer held open."""
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute("create table projects (id text primary key)")
    db.close()
    with pytest.raises(
        StartupError, match=r"cannot open the store .*s\.db: no such column: user_id; move it"
    ):
        async with LocalBackend(path):
            pass
    assert held_open(path) == 0


async def test_a_store_from_a_newer_syncd_is_refused_untouched(tmp_path: Path) -> None:
    """A new store is stamped with this build's format; one stamped higher is refused with an error naming
    the file and both formats, and not a byte of it changes (not even its journal mode)."""
    path = tmp_path / "s.db"
    async with LocalBackend(path):
        pass
    db = sqlite3.connect(path)
    assert db.execute("pragma user_version").fetchone()[0] == FORMAT
    db.close()
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.executescript(DDL)
    db.execute(f"pragma user_version = {FORMAT + 1}")
    db.close()
    before = newer.read_bytes()
    with pytest.raises(
        StartupError, match=f"newer.db was written by a newer syncd \\(file format {FORMAT + 1}; "
    ):
        async with LocalBackend(newer):
            pass
    assert newer.read_bytes() == before
