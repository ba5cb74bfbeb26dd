"""One suite of apply-rule cases, run against every implementation of ``syncd_apply``.

The apply rule of :mod:`syncd.core.batch` has two implementations: the ``syncd_apply`` Postgres function
(supabase/migrations) and the embedded store's :meth:`LocalBackend.apply`. Each case here drives an
`ApplyTarget` with batches in the JSON form of :func:`syncd.core.batch.encode_batch` and asserts what both
must show alike: the rows' fields and versions, the ``missing`` lists, the recorded mutations, and which
batches are refused. Timestamps differ between the two and are left out. ``tests/test_syncd_apply.py``
runs every case in `CASES` against both targets.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from syncd.adapters.local import LocalBackend
from syncd.errors import WriteError

Row = dict[str, Any]
By = tuple[str, int]
Key = tuple[str, str]

TIMESTAMPS = frozenset({"created_at", "updated_at"})


class ApplyRefused(Exception):
    """The target refused a whole batch (bad input or a broken constraint); nothing was applied.

    Args:
        detail: the target's error message.
        sqlstate: the SQLSTATE when the target is PostgreSQL.
    """

    def __init__(self, detail: str, sqlstate: str | None = None) -> None:
        super().__init__(detail)
        self.sqlstate = sqlstate


class ApplyTarget(Protocol):
    """An implementation of the apply rule, with what a test needs to look at its tables."""

    name: str

    async def create_project(self) -> str:
        """Create a project with its defaults and return its id."""

    async def apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a batch; raise `ApplyRefused` when the target refuses it."""

    async def read(self, project_id: str) -> dict[Key, Row]:
        """Return every row of a project (the project row too), keyed by table and id."""

    async def recorded(self) -> set[By]:
        """Return the rows of ``syncd_mutations``: each client's highest applied mid, per project."""

    async def create_voice(self) -> str:
        """Create a voice (voices are not synced, so not through a batch) and return its id."""

    async def applied(self, project_id: str) -> dict[str, int]:
        """Return the highest recorded mid per client of one project, as the backend's load reads it."""


class PostgresTarget:
    """``public.syncd_apply`` called as ``service_role``, the way PostgREST runs an RPC of syncd.

    Args:
        conn: a superuser connection to a database with the migrations applied.
    """

    name = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def create_project(self) -> str:
        """Insert a project with its defaults and return its id."""
        return str(await self.conn.fetchval("insert into public.projects default values returning id::text"))

    async def apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``syncd_apply`` in a transaction of its own, as ``service_role``."""
        try:
            async with self.conn.transaction():
                await self.conn.execute("set local role service_role")
                answer = await self.conn.fetchval(
                    "select public.syncd_apply($1::jsonb)::text", json.dumps(batch)
                )
        except asyncpg.PostgresError as exc:
            raise ApplyRefused(str(exc), exc.sqlstate) from exc
        decoded: dict[str, Any] = json.loads(answer)
        return decoded

    async def read(self, project_id: str) -> dict[Key, Row]:
        """Read the project's rows as ``to_jsonb`` gives them."""
        found = await self.conn.fetch(
            "select 'projects' as tbl, to_jsonb(p)::text as data from public.projects p where p.id = $1::uuid"
            " union all select 'scenes', to_jsonb(s)::text from public.scenes s where s.project_id = $1::uuid"
            " union all select 'clips', to_jsonb(c)::text from public.clips c where c.project_id = $1::uuid",
            project_id,
        )
        rows: dict[Key, Row] = {}
        for record in found:
            row = json.loads(record["data"])
            rows[(str(record["tbl"]), str(row["id"]))] = row
        return rows

    async def recorded(self) -> set[By]:
        """Read ``syncd_mutations`` as the superuser."""
        found = await self.conn.fetch("select client_id, mid from public.syncd_mutations")
        return {(str(r["client_id"]), int(r["mid"])) for r in found}

    async def create_voice(self) -> str:
        """Insert a voice as the superuser and return its id."""
        return str(await self.conn.fetchval("insert into public.voices default values returning id::text"))

    async def applied(self, project_id: str) -> dict[str, int]:
        """Call ``syncd_applied_mids`` as ``service_role``, the way the Supabase backend's load does."""
        async with self.conn.transaction():
            await self.conn.execute("set local role service_role")
            answer = await self.conn.fetchval("select public.syncd_applied_mids($1::uuid)::text", project_id)
        decoded: dict[str, int] = json.loads(answer)
        return decoded


class LocalTarget:
    """The embedded store, :class:`LocalBackend`, on a SQLite file.

    Args:
        store: an open store.
        path: its file, which tests read directly for ``syncd_mutations``.
    """

    name = "local"

    def __init__(self, store: LocalBackend, path: Path) -> None:
        self.store = store
        self.path = path

    async def create_project(self) -> str:
        """Create a project and return its id."""
        row = await self.store.create_project("Untitled project")
        return str(row["id"])

    async def apply(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply with :meth:`LocalBackend.apply_encoded`; a non-retryable ``WriteError`` is a refusal."""
        try:
            return await self.store.apply_encoded(batch)
        except WriteError as exc:
            if exc.retryable:
                raise
            raise ApplyRefused(str(exc)) from exc

    async def read(self, project_id: str) -> dict[Key, Row]:
        """Read the project's rows with :meth:`LocalBackend.read_project`."""
        loaded = await self.store.read_project(project_id)
        rows: dict[Key, Row] = {}
        if loaded["project"] is not None:
            rows[("projects", loaded["project"]["id"])] = loaded["project"]
        for table in ("scenes", "clips"):
            for row in loaded[table]:
                rows[(table, row["id"])] = row
        return rows

    async def recorded(self) -> set[By]:
        """Read ``syncd_mutations`` from the file on a connection of its own (WAL allows it)."""
        with sqlite3.connect(self.path) as db:
            found = db.execute("select client_id, mid from syncd_mutations").fetchall()
        return {(str(client), int(mid)) for client, mid in found}

    async def create_voice(self) -> str:
        """Insert a voice into the file on a connection of its own and return its id."""
        voice = new_id()
        with sqlite3.connect(self.path) as db:
            db.execute("insert into voices (id) values (?)", (voice,))
        return voice

    async def applied(self, project_id: str) -> dict[str, int]:
        """Read ``applied`` of :meth:`LocalBackend.read_project`."""
        applied: dict[str, int] = (await self.store.read_project(project_id))["applied"]
        return applied


# Batch builders -----------------------------------------------------------------------------------


def new_id() -> str:
    """Return a fresh row id."""
    return str(uuid.uuid4())


def insert(table: str, row_id: str, by: By, **fields: Any) -> dict[str, Any]:
    """Return an insert op; the row holds ``id`` and ``fields``."""
    return {"op": "insert", "table": table, "id": row_id, "row": {"id": row_id, **fields}, "by": list(by)}


def update(table: str, row_id: str, **fields: tuple[Any, By]) -> dict[str, Any]:
    """Return an update op; each field is given as ``(value, by)``."""
    written = {name: {"value": value, "by": list(by)} for name, (value, by) in fields.items()}
    return {"op": "update", "table": table, "id": row_id, "set": written}


def delete(table: str, row_id: str, by: By) -> dict[str, Any]:
    """Return a delete op."""
    return {"op": "delete", "table": table, "id": row_id, "by": list(by)}


def batch(project_id: str, ops: list[dict[str, Any]], mutations: list[By] | None = None) -> dict[str, Any]:
    """Return a batch; ``mutations`` defaults to every ``by`` of the ops, in order, once each."""
    if mutations is None:
        seen: dict[By, None] = {}
        for op in ops:
            if "by" in op:
                seen[(op["by"][0], op["by"][1])] = None
            for write in op.get("set", {}).values():
                seen[(write["by"][0], write["by"][1])] = None
        mutations = list(seen)
    return {"project_id": project_id, "batch_id": 1, "ops": ops, "mutations": [list(m) for m in mutations]}


def plain(row: Mapping[str, Any]) -> Row:
    """Return a row without its timestamps, which the two targets write differently."""
    return {name: value for name, value in row.items() if name not in TIMESTAMPS}


def answer_rows(answer: Mapping[str, Any]) -> dict[Key, Row]:
    """Return the answer's rows, without timestamps, keyed by table and id; each row must appear once."""
    rows = {(r["table"], r["row"]["id"]): plain(r["row"]) for r in answer["rows"]}
    assert len(rows) == len(answer["rows"]), f"a row is answered twice: {answer['rows']}"
    return rows


def missing(answer: Mapping[str, Any]) -> set[Key]:
    """Return the answer's missing rows; each must appear once."""
    keys = {(m["table"], m["id"]) for m in answer["missing"]}
    assert len(keys) == len(answer["missing"]), f"a row is missing twice: {answer['missing']}"
    return keys


async def read_plain(target: ApplyTarget, project_id: str) -> dict[Key, Row]:
    """Return the project's rows without timestamps."""
    return {key: plain(row) for key, row in (await target.read(project_id)).items()}


async def seed_scene(target: ApplyTarget, project_id: str, client: str, mid: int, **fields: Any) -> str:
    """Insert a scene through the target and return its id."""
    scene = new_id()
    await target.apply(batch(project_id, [insert("scenes", scene, (client, mid), **fields)]))
    return scene


# Cases --------------------------------------------------------------------------------------------

Case = Callable[[ApplyTarget], Awaitable[None]]
"""One conformance case: it drives a target and asserts on what it shows."""

CASES: list[Case] = []
"""Every case, in the order they are defined."""


def case(fn: Case) -> Case:
    """Register ``fn`` in `CASES`."""
    CASES.append(fn)
    return fn


@case
async def insert_fills_defaults_and_the_batch_project(target: ApplyTarget) -> None:
    """An insert writes the row's fields, defaults for the others, the batch's project and version 1."""
    p, other = await target.create_project(), await target.create_project()
    s = new_id()
    row = {"heading": "Dawn", "scene_index": 3, "project_id": other, "version": 9, "created_at": "2001-01-01"}
    answer = await target.apply(batch(p, [insert("scenes", s, ("c", 1), **row)]))
    expected = {
        "id": s,
        "project_id": p,
        "scene_index": 3,
        "heading": "Dawn",
        "body": "",
        "duration": 0,
        "voice_id": None,
        "version": 1,
    }
    assert answer_rows(answer) == {("scenes", s): expected}
    assert answer["missing"] == []
    assert (await read_plain(target, p))[("scenes", s)] == expected
    assert ("scenes", s) not in await read_plain(target, other)


@case
async def insert_of_an_existing_id_leaves_the_row(target: ApplyTarget) -> None:
    """An insert whose id exists in the project leaves that row as it is and answers with it."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1, heading="A")
    answer = await target.apply(batch(p, [insert("scenes", s, ("c", 2), heading="B")]))
    row = answer_rows(answer)[("scenes", s)]
    assert (row["heading"], row["version"]) == ("A", 1)
    assert await target.recorded() == {("c", 2)}


@case
async def update_steps_the_version_once(target: ApplyTarget) -> None:
    """An update of several fields writes them all with one version step."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    op = update("scenes", s, heading=("H", ("c", 2)), body=("B", ("c", 3)), duration=(2.5, ("c", 4)))
    answer = await target.apply(batch(p, [op]))
    row = answer_rows(answer)[("scenes", s)]
    assert (row["heading"], row["body"], row["duration"], row["version"]) == ("H", "B", 2.5, 2)
    assert (await read_plain(target, p))[("scenes", s)] == row


@case
async def update_of_the_project_row(target: ApplyTarget) -> None:
    """The project row takes text and JSON fields, nested JSON kept as sent."""
    p = await target.create_project()
    settings = {"fps": 24, "tags": ["a", "b"], "grade": {"lut": None, "gain": 1.25}}
    op = update("projects", p, title=("Film", ("c", 1)), settings=(settings, ("c", 2)))
    answer = await target.apply(batch(p, [op]))
    row = answer_rows(answer)[("projects", p)]
    assert (row["title"], row["settings"], row["version"]) == ("Film", settings, 2)
    assert (await read_plain(target, p))[("projects", p)] == row


@case
async def nullable_columns_take_null_and_json(target: ApplyTarget) -> None:
    """A clip's nullable columns take values and null again, and its metadata keeps nested JSON."""
    p = await target.create_project()
    clip = new_id()
    metadata = {"seed": 7, "shots": [{"cam": "A"}, {"cam": "B"}], "ok": True}
    await target.apply(batch(p, [insert("clips", clip, ("c", 1), trim_end=1.5, metadata=metadata)]))
    answer = await target.apply(batch(p, [update("clips", clip, trim_end=(None, ("c", 2)))]))
    row = answer_rows(answer)[("clips", clip)]
    assert (row["trim_end"], row["metadata"], row["version"]) == (None, metadata, 2)


@case
async def update_with_every_field_recorded_touches_nothing(target: ApplyTarget) -> None:
    """An update whose fields were all applied before writes nothing and keeps the version."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    first = batch(p, [update("scenes", s, heading=("H", ("c", 2)))])
    await target.apply(first)
    before = await read_plain(target, p)
    answer = await target.apply(first)
    assert answer_rows(answer) == {("scenes", s): before[("scenes", s)]}
    assert before[("scenes", s)]["version"] == 2
    assert await read_plain(target, p) == before


@case
async def delete_reports_the_row_missing(target: ApplyTarget) -> None:
    """A delete removes the row and reports it missing, as does a delete of a row that never existed."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    ghost = new_id()
    answer = await target.apply(batch(p, [delete("scenes", s, ("c", 2)), delete("clips", ghost, ("c", 3))]))
    assert answer["rows"] == []
    assert missing(answer) == {("scenes", s), ("clips", ghost)}
    assert ("scenes", s) not in await target.read(p)
    assert await target.recorded() == {("c", 3)}


@case
async def update_of_a_missing_row_is_reported_not_refused(target: ApplyTarget) -> None:
    """An update of a row that does not exist is reported missing and the rest of the batch applies."""
    p = await target.create_project()
    ghost = new_id()
    answer = await target.apply(
        batch(
            p, [update("clips", ghost, prompt=("x", ("c", 1))), update("projects", p, title=("T", ("c", 2)))]
        )
    )
    assert missing(answer) == {("clips", ghost)}
    assert answer_rows(answer)[("projects", p)]["title"] == "T"
    assert await target.recorded() == {("c", 2)}


@case
async def replayed_batch_applies_nothing(target: ApplyTarget) -> None:
    """The same batch applied again changes nothing, even after another writer changed its rows."""
    p = await target.create_project()
    s, gone = await seed_scene(target, p, "c", 1), await seed_scene(target, p, "c", 2)
    fresh = new_id()
    flush = batch(
        p,
        [
            delete("scenes", gone, ("c", 3)),
            insert("scenes", fresh, ("c", 4), heading="new"),
            update("scenes", s, heading=("mine", ("c", 5)), body=("b", ("c", 6))),
        ],
    )
    first = await target.apply(flush)
    await target.apply(batch(p, [update("scenes", s, heading=("theirs", ("o", 1)))]))
    await target.apply(batch(p, [delete("scenes", fresh, ("o", 2))]))
    before = await read_plain(target, p)
    again = await target.apply(flush)
    assert answer_rows(first)[("scenes", s)]["version"] == 2
    assert answer_rows(again) == {("scenes", s): before[("scenes", s)]}
    assert before[("scenes", s)]["heading"] == "theirs"
    assert before[("scenes", s)]["version"] == 3
    assert missing(again) == {("scenes", gone), ("scenes", fresh)}
    assert await read_plain(target, p) == before


@case
async def partial_replay_applies_only_the_new_mutations(target: ApplyTarget) -> None:
    """A batch mixing applied and new mutations writes only the new ones, with one version step."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    await target.apply(batch(p, [update("scenes", s, heading=("old", ("c", 2)))]))
    await target.apply(batch(p, [update("scenes", s, heading=("theirs", ("o", 1)))]))
    c2 = new_id()
    answer = await target.apply(
        batch(
            p,
            [
                insert("clips", c2, ("c", 4), prompt="p"),
                update("scenes", s, heading=("old", ("c", 2)), body=("new", ("c", 3))),
            ],
            [("c", 2), ("c", 3), ("c", 4)],
        )
    )
    rows = answer_rows(answer)
    assert (rows[("scenes", s)]["heading"], rows[("scenes", s)]["body"]) == ("theirs", "new")
    assert rows[("scenes", s)]["version"] == 4
    assert rows[("clips", c2)]["prompt"] == "p"


@case
async def replayed_insert_does_not_revive_a_deleted_row(target: ApplyTarget) -> None:
    """An insert whose mutation was applied is skipped, so a row deleted since stays deleted."""
    p = await target.create_project()
    s = new_id()
    flush = batch(p, [insert("scenes", s, ("c", 1), heading="x")])
    await target.apply(flush)
    await target.apply(batch(p, [delete("scenes", s, ("o", 1))]))
    again = await target.apply(flush)
    assert again["rows"] == []
    assert missing(again) == {("scenes", s)}
    assert ("scenes", s) not in await target.read(p)


@case
async def replayed_delete_does_not_remove_a_reinserted_row(target: ApplyTarget) -> None:
    """A delete whose mutation was applied is skipped, so a row inserted again since stays."""
    p = await target.create_project()
    clip = new_id()
    await target.apply(batch(p, [insert("clips", clip, ("c", 1))]))
    flush = batch(p, [delete("clips", clip, ("c", 2))])
    await target.apply(flush)
    await target.apply(batch(p, [insert("clips", clip, ("c", 3), prompt="back")]))
    again = await target.apply(flush)
    assert answer_rows(again)[("clips", clip)]["prompt"] == "back"
    assert again["missing"] == []


@case
async def recorded_author_is_skipped_even_when_not_listed(target: ApplyTarget) -> None:
    """A field whose mutation was applied is skipped even if the batch leaves it out of its mutations."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    await target.apply(batch(p, [update("scenes", s, heading=("old", ("c", 2)))]))
    await target.apply(batch(p, [update("scenes", s, heading=("theirs", ("o", 1)))]))
    answer = await target.apply(batch(p, [update("scenes", s, heading=("old", ("c", 2)))], [("c", 9)]))
    row = answer_rows(answer)[("scenes", s)]
    assert (row["heading"], row["version"]) == ("theirs", 3)
    assert await target.recorded() == {("c", 9), ("o", 1)}


@case
async def delete_then_insert_of_one_row_answers_the_new_row(target: ApplyTarget) -> None:
    """A row deleted and inserted again in one batch (undo) is answered as a row, not as missing."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1, heading="before")
    answer = await target.apply(
        batch(p, [delete("scenes", s, ("c", 2)), insert("scenes", s, ("c", 3), heading="after")])
    )
    row = answer_rows(answer)[("scenes", s)]
    assert (row["heading"], row["version"]) == ("after", 1)
    assert answer["missing"] == []


@case
async def clip_may_point_at_a_scene_of_the_same_batch(target: ApplyTarget) -> None:
    """Scenes are inserted before clips, so a clip of the batch may name a scene of the batch."""
    p = await target.create_project()
    s, clip = new_id(), new_id()
    answer = await target.apply(
        batch(p, [insert("scenes", s, ("c", 1)), insert("clips", clip, ("c", 2), scene_id=s, order_index=4)])
    )
    rows = answer_rows(answer)
    assert (rows[("clips", clip)]["scene_id"], rows[("clips", clip)]["order_index"]) == (s, 4)
    assert list(rows) == [("scenes", s), ("clips", clip)]


@case
async def insert_then_update_answers_the_row_once(target: ApplyTarget) -> None:
    """A row inserted and then updated by one batch is answered once, with both writes."""
    p = await target.create_project()
    s = new_id()
    answer = await target.apply(
        batch(p, [insert("scenes", s, ("c", 1), heading="h"), update("scenes", s, body=("b", ("c", 2)))])
    )
    row = answer_rows(answer)[("scenes", s)]
    assert (row["heading"], row["body"]) == ("h", "b")


@case
async def rows_of_another_project_are_untouchable(target: ApplyTarget) -> None:
    """Updates, deletes and inserts naming another project's rows report them missing and change nothing."""
    p, other = await target.create_project(), await target.create_project()
    theirs = await seed_scene(target, other, "o", 1, heading="kept")
    before = await read_plain(target, other)
    answer = await target.apply(
        batch(
            p,
            [
                delete("scenes", theirs, ("c", 1)),
                insert("scenes", theirs, ("c", 2), heading="stolen"),
                update("scenes", theirs, heading=("x", ("c", 3))),
                update("projects", other, title=("x", ("c", 4))),
            ],
        )
    )
    assert answer["rows"] == []
    assert missing(answer) == {("scenes", theirs), ("projects", other)}
    assert await read_plain(target, other) == before
    assert ("scenes", theirs) not in await target.read(p)


@case
async def batch_of_a_missing_project_changes_nothing(target: ApplyTarget) -> None:
    """A batch of a project that does not exist reports every row missing and records nothing."""
    ghost_project, s = new_id(), new_id()
    answer = await target.apply(
        batch(
            ghost_project,
            [insert("scenes", s, ("c", 1)), update("projects", ghost_project, title=("x", ("c", 2)))],
        )
    )
    assert answer["rows"] == []
    assert missing(answer) == {("scenes", s), ("projects", ghost_project)}
    assert await target.read(ghost_project) == {}
    assert await target.recorded() == set()


@case
async def the_highest_listed_mid_of_each_client_is_recorded(target: ApplyTarget) -> None:
    """Each client's highest listed mid is recorded, a mid without an op too; twice is harmless."""
    p = await target.create_project()
    flush = batch(p, [update("projects", p, title=("T", ("c", 2)))], [("c", 1), ("c", 2), ("d", 1), ("c", 3)])
    await target.apply(flush)
    await target.apply(flush)
    assert await target.recorded() == {("c", 3), ("d", 1)}


@case
async def a_mid_at_or_below_the_recorded_one_counts_as_applied(target: ApplyTarget) -> None:
    """Every mid of a client up to its recorded one counts as applied, listed before or not: syncd sends
    a client's mutations in mid order, so the mids below the highest were applied with it or before."""
    p = await target.create_project()
    s, clip = await seed_scene(target, p, "o", 1, heading="kept"), new_id()
    await target.apply(batch(p, [insert("clips", clip, ("o", 2), prompt="kept")], [("o", 2), ("c", 5)]))
    before = await read_plain(target, p)
    fresh = new_id()
    answer = await target.apply(
        batch(
            p,
            [
                delete("clips", clip, ("c", 2)),
                insert("scenes", fresh, ("c", 3)),
                update("scenes", s, heading=("lost", ("c", 4)), body=("lost", ("c", 5))),
            ],
        )
    )
    assert answer_rows(answer) == {key: before[key] for key in (("clips", clip), ("scenes", s))}
    assert missing(answer) == {("scenes", fresh)}
    assert await read_plain(target, p) == before
    # The next mid applies, and a client is counted on its own: d's first mid applies too.
    await target.apply(batch(p, [update("scenes", s, heading=("h", ("c", 6)), body=("b", ("d", 1)))]))
    row = (await read_plain(target, p))[("scenes", s)]
    assert (row["heading"], row["body"], row["version"]) == ("h", "b", 2)


@case
async def the_record_keeps_one_row_per_client_and_never_lowers_it(target: ApplyTarget) -> None:
    """The record holds one row per client of a project however many batches it applied; a batch that
    lists only lower mids leaves it as it is."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    for mid in range(2, 42):
        await target.apply(batch(p, [update("scenes", s, heading=(f"h{mid}", ("c", mid)))]))
    await target.apply(batch(p, [], [("c", 7), ("d", 3)]))
    assert await target.recorded() == {("c", 41), ("d", 3)}
    assert await target.applied(p) == {"c": 41, "d": 3}
    assert (await read_plain(target, p))[("scenes", s)]["heading"] == "h41"


@case
async def one_client_and_mid_in_two_projects_are_two_mutations(target: ApplyTarget) -> None:
    """A mutation is recorded per project: the same (client_id, mid) in another project is applied."""
    p, q = await target.create_project(), await target.create_project()
    mine = await seed_scene(target, p, "c", 1, heading="p")
    gone = await seed_scene(target, q, "z", 1)
    await target.apply(batch(p, [update("scenes", mine, heading=("p2", ("c", 2)))], [("c", 2), ("c", 3)]))
    theirs = new_id()
    answer = await target.apply(
        batch(
            q,
            [
                insert("scenes", theirs, ("c", 1), heading="q"),
                update("scenes", theirs, body=("q2", ("c", 2))),
                delete("scenes", gone, ("c", 3)),
            ],
        )
    )
    assert missing(answer) == {("scenes", gone)}
    row = answer_rows(answer)[("scenes", theirs)]
    assert (row["heading"], row["body"]) == ("q", "q2")
    rows = await read_plain(target, q)
    assert rows[("scenes", theirs)]["body"] == "q2"
    assert ("scenes", gone) not in rows
    # A replay in either project still applies nothing twice.
    await target.apply(batch(p, [update("scenes", mine, heading=("again", ("c", 2)))]))
    await target.apply(batch(q, [update("scenes", theirs, body=("again", ("c", 2)))]))
    assert (await read_plain(target, p))[("scenes", mine)]["heading"] == "p2"
    assert (await read_plain(target, q))[("scenes", theirs)]["body"] == "q2"


@case
async def applied_mids_are_the_highest_per_client_of_the_project(target: ApplyTarget) -> None:
    """The load's ``applied``: per client id, the highest recorded mid of this project only."""
    p, q = await target.create_project(), await target.create_project()
    await target.apply(batch(p, [], [("c", 1), ("c", 5), ("d", 2), ("c", 3)]))
    await target.apply(batch(q, [], [("c", 9), ("e", 2**53)]))
    assert await target.applied(p) == {"c": 5, "d": 2}
    assert await target.applied(q) == {"c": 9, "e": 2**53}
    assert await target.applied(new_id()) == {}


@case
async def a_clip_naming_a_gone_scene_gets_null(target: ApplyTarget) -> None:
    """A clip's scene_id naming a missing scene or another project's scene is written as NULL, not refused."""
    p, other = await target.create_project(), await target.create_project()
    kept = await seed_scene(target, p, "c", 1)
    theirs = await seed_scene(target, other, "o", 1)
    gone = await seed_scene(target, p, "c", 2)
    await target.apply(batch(p, [delete("scenes", gone, ("x", 1))]))
    inserted, updated, pointed = new_id(), new_id(), new_id()
    await target.apply(
        batch(p, [insert("clips", updated, ("c", 3), scene_id=kept), insert("clips", pointed, ("c", 4))])
    )
    answer = await target.apply(
        batch(
            p,
            [
                insert("clips", inserted, ("c", 5), scene_id=gone, prompt="fog"),
                update("clips", updated, scene_id=(theirs, ("c", 6)), prompt=("rain", ("c", 6))),
                update("clips", pointed, scene_id=(kept, ("c", 7))),
            ],
        )
    )
    rows = answer_rows(answer)
    assert (rows[("clips", inserted)]["scene_id"], rows[("clips", inserted)]["prompt"]) == (None, "fog")
    assert (rows[("clips", updated)]["scene_id"], rows[("clips", updated)]["prompt"]) == (None, "rain")
    assert rows[("clips", updated)]["version"] == 2
    assert rows[("clips", pointed)]["scene_id"] == kept
    stored = await read_plain(target, p)
    assert {key: stored[key] for key in rows} == rows
    assert ("c", 7) in await target.recorded()


@case
async def a_scene_naming_a_gone_voice_gets_null(target: ApplyTarget) -> None:
    """A scene's voice_id naming a missing voice is written as NULL; an existing voice is kept."""
    p = await target.create_project()
    voice = await target.create_voice()
    kept, ghost = new_id(), new_id()
    answer = await target.apply(
        batch(
            p,
            [
                insert("scenes", kept, ("c", 1), voice_id=voice),
                insert("scenes", ghost, ("c", 2), voice_id=new_id(), heading="h"),
            ],
        )
    )
    rows = answer_rows(answer)
    assert rows[("scenes", kept)]["voice_id"] == voice
    assert (rows[("scenes", ghost)]["voice_id"], rows[("scenes", ghost)]["heading"]) == (None, "h")
    answer = await target.apply(batch(p, [update("scenes", kept, voice_id=(new_id(), ("c", 3)))]))
    assert answer_rows(answer)[("scenes", kept)]["voice_id"] is None
    assert (await read_plain(target, p))[("scenes", kept)]["voice_id"] is None


async def assert_refused(target: ApplyTarget, project_id: str, ops: list[dict[str, Any]]) -> None:
    """Assert that a batch starting with a valid update and then ``ops`` is refused and changes nothing."""
    before = await read_plain(target, project_id)
    recorded = await target.recorded()
    bad = batch(project_id, [update("projects", project_id, title=("changed", ("v", 1))), *ops])
    with pytest.raises(ApplyRefused):
        await target.apply(bad)
    assert await read_plain(target, project_id) == before
    assert await target.recorded() == recorded


@case
async def read_only_columns_are_refused(target: ApplyTarget) -> None:
    """An update of a column that only the database sets refuses the whole batch."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    for column, value in [
        ("id", new_id()),
        ("project_id", p),
        ("version", 7),
        ("created_at", "2001-01-01T00:00:00+00:00"),
        ("updated_at", "2001-01-01T00:00:00+00:00"),
    ]:
        await assert_refused(target, p, [update("scenes", s, **{column: (value, ("c", 2))})])
    await assert_refused(target, p, [update("projects", p, user_id=(None, ("c", 2)))])


@case
async def unknown_columns_are_refused(target: ApplyTarget) -> None:
    """A column the table does not have refuses the batch, in an update and in an insert."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    await assert_refused(target, p, [update("scenes", s, colour=("red", ("c", 2)))])
    await assert_refused(target, p, [insert("clips", new_id(), ("c", 2), colour="red")])


@case
async def unsynced_tables_are_refused(target: ApplyTarget) -> None:
    """A table other than projects, scenes and clips refuses the batch."""
    p = await target.create_project()
    for table in ("voices", "exports", "audio_files", "syncd_mutations", "nope"):
        await assert_refused(target, p, [update(table, new_id(), name=("x", ("c", 2)))])
        await assert_refused(target, p, [delete(table, new_id(), ("c", 2))])


@case
async def project_rows_cannot_be_inserted_or_deleted(target: ApplyTarget) -> None:
    """A batch may update its project row but never insert or delete a project."""
    p = await target.create_project()
    await assert_refused(target, p, [delete("projects", p, ("c", 2))])
    await assert_refused(target, p, [insert("projects", new_id(), ("c", 2), title="x")])
    assert ("projects", p) in await target.read(p)


@case
async def an_insert_row_with_another_id_is_refused(target: ApplyTarget) -> None:
    """An insert whose row names an id other than the op's refuses the batch."""
    p = await target.create_project()
    op = insert("scenes", new_id(), ("c", 2))
    op["row"]["id"] = new_id()
    await assert_refused(target, p, [op])


@case
async def broken_constraints_refuse_the_whole_batch(target: ApplyTarget) -> None:
    """A check or not-null violation refuses the whole batch, its earlier ops and records included."""
    p = await target.create_project()
    s = await seed_scene(target, p, "c", 1)
    await assert_refused(target, p, [update("scenes", s, heading=(None, ("c", 2)))])
    await assert_refused(target, p, [update("scenes", s, duration=(-1, ("c", 2)))])
    await assert_refused(target, p, [insert("clips", new_id(), ("c", 2), status="bogus")])
    await assert_refused(target, p, [update("projects", p, aspect_ratio=("2:1", ("c", 2)))])


# Fencing (cluster mode) ---------------------------------------------------------------------------


def fenced(body: dict[str, Any], fence: Any) -> dict[str, Any]:
    """Return ``body`` with the owner's fencing token ``fence``."""
    return {**body, "fence": fence}


async def assert_stale(target: ApplyTarget, project_id: str, body: dict[str, Any]) -> None:
    """Assert that ``body`` is refused as a stale owner's and changes nothing."""
    before = await read_plain(target, project_id)
    recorded = await target.recorded()
    with pytest.raises(ApplyRefused, match="stale owner"):
        await target.apply(body)
    assert await read_plain(target, project_id) == before
    assert await target.recorded() == recorded


@case
async def a_fence_below_the_highest_is_refused(target: ApplyTarget) -> None:
    """Once a project has seen fence 7, a batch with fence 5 changes nothing; 7 again and 9 apply."""
    p = await target.create_project()
    await target.apply(fenced(batch(p, [update("projects", p, title=("first", ("a", 1)))]), 5))
    await target.apply(fenced(batch(p, [update("projects", p, title=("second", ("b", 1)))]), 7))
    await assert_stale(target, p, fenced(batch(p, [update("projects", p, title=("stale", ("a", 2)))]), 5))
    assert ("a", 2) not in await target.recorded()
    await target.apply(fenced(batch(p, [update("projects", p, script=("s", ("b", 2)))]), 7))
    answer = await target.apply(fenced(batch(p, [update("projects", p, title=("third", ("c", 1)))]), 9))
    assert answer_rows(answer)[("projects", p)]["title"] == "third"
    await assert_stale(target, p, fenced(batch(p, [], [("b", 3)]), 7))


@case
async def an_empty_fenced_batch_raises_the_fence(target: ApplyTarget) -> None:
    """A new owner's batch with no ops still raises the fence, so the old owner's next write is refused."""
    p = await target.create_project()
    await target.apply(fenced(batch(p, [update("projects", p, title=("old", ("a", 1)))]), 3))
    answer = await target.apply(fenced(batch(p, []), 8))
    assert answer == {"rows": [], "missing": []}
    await assert_stale(target, p, fenced(batch(p, [update("projects", p, title=("late", ("a", 2)))]), 3))


@case
async def a_batch_without_fence_is_not_checked(target: ApplyTarget) -> None:
    """A batch without fence (single-process mode), or with fence null, applies whatever was seen."""
    p = await target.create_project()
    await target.apply(fenced(batch(p, []), 12))
    await target.apply(batch(p, [update("projects", p, title=("plain", ("a", 1)))]))
    answer = await target.apply(fenced(batch(p, [update("projects", p, script=("null", ("a", 2)))]), None))
    row = answer_rows(answer)[("projects", p)]
    assert (row["title"], row["script"]) == ("plain", "null")
    await assert_stale(target, p, fenced(batch(p, []), 11))


@case
async def fences_are_per_project(target: ApplyTarget) -> None:
    """A high fence on one project does not refuse a lower one on another; a missing project records none."""
    p, other, ghost = await target.create_project(), await target.create_project(), new_id()
    await target.apply(fenced(batch(p, []), 50))
    answer = await target.apply(fenced(batch(other, [update("projects", other, title=("t", ("a", 1)))]), 2))
    assert answer_rows(answer)[("projects", other)]["title"] == "t"
    answer = await target.apply(fenced(batch(ghost, [update("projects", ghost, title=("x", ("a", 2)))]), 1))
    assert missing(answer) == {("projects", ghost)}
    answer = await target.apply(fenced(batch(ghost, []), 0))  # nothing was recorded for it
    assert answer == {"rows": [], "missing": []}


@case
async def a_fence_that_is_not_a_non_negative_integer_is_refused(target: ApplyTarget) -> None:
    """A fence of the wrong type or sign refuses the batch, whatever the project has seen."""
    p = await target.create_project()
    for bad in (-1, 1.5, "3", True, [3], {"token": 3}):
        before = await read_plain(target, p)
        with pytest.raises(ApplyRefused, match="fence"):
            await target.apply(fenced(batch(p, [update("projects", p, title=("x", ("v", 1)))]), bad))
        assert await read_plain(target, p) == before
    assert ("v", 1) not in await target.recorded()
