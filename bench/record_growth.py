"""What the record of applied mutations (``syncd_mutations``) costs as a project's saves add up.

Applies ``--saves`` write batches to one project, each covering ``--clients`` clients with
``--per-client`` mutations each and one field update, then prints the record's rows and bytes and the
time of one apply, for the embedded store (``LocalBackend``) and for ``syncd_apply`` in PostgreSQL (the
stand-in's cluster with this checkout's ``supabase/`` migrations, called as ``service_role``).

Run from the repository root (to compare two versions, run it in a checkout of each)::

    .venv/bin/python bench/record_growth.py                 # 2,000 saves of 10 clients x 4 mutations
    .venv/bin/python bench/record_growth.py --saves 500 --no-postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from common import percentile

from localsupabase.postgres import PostgresServer, prepare_supabase_database, project_sql_files
from syncd.adapters.local import LocalBackend

REPO = Path(__file__).resolve().parents[1]


def batches(project_id: str, scene_id: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The saves: mids rise across the batches, every client writing ``per_client`` of each batch."""
    clients = [str(uuid.uuid4()) for _ in range(args.clients)]
    out, mid = [], 0
    for n in range(args.saves):
        mids = []
        for _ in range(args.per_client):
            mid += 1
            mids += [[c, mid] for c in clients]
        update = {
            "op": "update",
            "table": "scenes",
            "id": scene_id,
            "set": {"body": {"value": f"b{n}", "by": mids[-1]}},
        }
        out.append({"project_id": project_id, "batch_id": n + 1, "ops": [update], "mutations": mids})
    return out


def report(name: str, rows: int, size: int, took: list[float], args: argparse.Namespace) -> None:
    mutations = args.saves * args.clients * args.per_client
    print(
        f"{name:9} {mutations:,} mutations in {args.saves:,} saves:"
        f" record {rows:,} rows, {size / 1024:,.0f} KiB"
        f" ({size / mutations:.1f} B per mutation); apply p50 {statistics.median(took) * 1e3:.2f} ms,"
        f" p99 {percentile(took, 0.99) * 1e3:.2f} ms"
    )


def _vacuumed_size(db: sqlite3.Connection) -> int:
    # Pages, not the file's size: in WAL mode a vacuum's pages wait in the write-ahead log.
    db.execute("vacuum")
    return int(db.execute("pragma page_count").fetchone()[0] * db.execute("pragma page_size").fetchone()[0])


def record_size(path: Path) -> tuple[int, int]:
    """The record's rows and bytes: the vacuumed file with it less the vacuumed file without it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        rows = db.execute("select count(*) from syncd_mutations").fetchone()[0]
        with_record = _vacuumed_size(db)
        db.execute("delete from syncd_mutations")
        return rows, with_record - _vacuumed_size(db)
    finally:
        db.close()


async def embedded(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.db"
        took = []
        async with LocalBackend(path) as store:
            project_id = str((await store.create_project("record growth"))["id"])
            scene_id = str(uuid.uuid4())
            with sqlite3.connect(path) as db:
                db.execute("insert into scenes (id, project_id) values (?, ?)", (scene_id, project_id))
            for batch in batches(project_id, scene_id, args):
                start = time.perf_counter()
                await store.apply_encoded(batch)
                took.append(time.perf_counter() - start)
        rows, size = record_size(path)
    report("embedded", rows, size, took, args)


async def postgres(dsn: str, args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        project_id = str(await conn.fetchval("insert into public.projects default values returning id"))
        scene_id = str(uuid.uuid4())
        await conn.execute(
            "insert into public.scenes (id, project_id) values ($1::uuid, $2::uuid)", scene_id, project_id
        )
        took = []
        await conn.execute("set role service_role")
        for batch in batches(project_id, scene_id, args):
            start = time.perf_counter()
            await conn.fetchval("select public.syncd_apply($1::jsonb)::text", json.dumps(batch))
            took.append(time.perf_counter() - start)
        await conn.execute("reset role")
        await conn.execute("vacuum full public.syncd_mutations")
        rows = await conn.fetchval("select count(*) from public.syncd_mutations")
        size = await conn.fetchval("select pg_total_relation_size('public.syncd_mutations')")
    finally:
        await conn.close()
    report("postgres", rows, size, took, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--saves", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    asyncio.run(embedded(args))
    if args.postgres:
        with PostgresServer() as server:
            dsn = prepare_supabase_database(
                server, "record_growth", project_sql_files(REPO / "supabase", seed=False)
            )
            asyncio.run(postgres(dsn, args))


if __name__ == "__main__":
    main()
