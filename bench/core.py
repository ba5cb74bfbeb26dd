"""Benchmarks of the sync engine core and of the outbox, printed side by side.

1. Mutations per second through `SyncEngine` alone, driven the way the daemon drives it: one
   ``receive_mutation`` and one ``take_effects`` per edit, the debounce timer firing, write batches
   answered with the rows the database would return.
2. Acknowledged edits per second through `Outbox` with ``concurrency`` editors appending at once,
   each waiting for its ack before the next edit: group commit against one fsync per edit, with the
   ack latency (p50, p99, max). Closed loop, so these runs show the most each mode can take, and
   their latency is ``concurrency / throughput``. A third run offers a steady ``--rate`` of edits
   (the target load) with group commit and shows the ack latency editors see at that load.

Run from the repository root (takes under a minute with the defaults):

    .venv/bin/python bench/core.py
    .venv/bin/python bench/core.py --seconds 3 --concurrency 200 --dir /var/lib/syncd

The outbox file goes in a temporary folder under ``--dir`` (default: the system's temporary folder);
point it at the disk the daemon's state directory is on, since fsync cost depends on the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from syncd.adapters.outbox import Outbox
from syncd.core.batch import DeleteRow, InsertRow, UpdateRow, WriteBatch
from syncd.core.engine import SyncEngine
from syncd.core.ids import ClientId, ConnId, ProjectId, RowId, UserId
from syncd.core.inputs import Delete, Insert, Mutation, Patch, ProjectRows, Reorder, WriteOk
from syncd.core.journal import JournalEntry
from syncd.core.schema import Table
from syncd.core.values import JsonValue

PROJECT = ProjectId("00000000-0000-4000-8000-000000000001")
SCENES = 50


def _scene(n: int, version: int = 1, project: ProjectId = PROJECT) -> dict[str, JsonValue]:
    return {
        "id": f"scene-{n}",
        "project_id": project,
        "scene_index": n,
        "heading": "",
        "body": "",
        "duration": 0.0,
        "voice_id": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "version": version,
    }


def _loaded_engine(editors: int) -> tuple[SyncEngine, list[ConnId]]:
    engine = SyncEngine(jitter=random.random)
    engine.open_project(PROJECT, "bench", 0.0)
    project: dict[str, JsonValue] = {"id": PROJECT, "title": "Bench", "script": "", "version": 1}
    engine.receive_loaded(PROJECT, ProjectRows(project, tuple(_scene(n) for n in range(SCENES))), 0.0)
    conns = [ConnId(f"conn-{n}") for n in range(editors)]
    for n, conn in enumerate(conns):
        engine.attach(conn, ClientId(f"client-{n}"), UserId("bench"), PROJECT, None, 0.0)
    engine.take_effects()
    return engine, conns


class _Database:
    """Applies write batches to full rows and answers as ``syncd_apply`` does (every touched row, whole)."""

    def __init__(self, project: ProjectId = PROJECT) -> None:
        self.project = project
        self.rows: dict[RowId, dict[str, JsonValue]] = {
            RowId(f"scene-{n}"): _scene(n, project=project) for n in range(SCENES)
        }

    def answer(self, batch: WriteBatch) -> WriteOk:
        for op in batch.ops:
            match op:
                case DeleteRow():
                    self.rows.pop(op.id, None)
                case InsertRow():
                    row = {**_scene(0, project=self.project), **op.row, "version": 1}
                    self.rows.setdefault(op.id, row)
                case UpdateRow():
                    row = self.rows.get(op.id)
                    if row is not None:
                        row.update({name: write.value for name, write in op.fields.items()})
                        row["version"] = int(str(row["version"])) + 1
        touched = dict.fromkeys(op.id for op in batch.ops)
        table: Table = "scenes"
        rows = tuple((table, dict(self.rows[row_id])) for row_id in touched if row_id in self.rows)
        missing = tuple((table, row_id) for row_id in touched if row_id not in self.rows)
        return WriteOk(batch.batch_id, rows, missing)


def _drive(
    engine: SyncEngine,
    conns: list[ConnId],
    mutations: list[tuple[int, Mutation]],
    projects: tuple[ProjectId, ...] = (PROJECT,),
) -> float:
    """Feed mutations at 10 kHz of loop time; returns the wall seconds spent."""
    databases = {project: _Database(project) for project in projects}
    now = 0.0
    start = time.perf_counter()
    for conn_index, mutation in mutations:
        now += 0.0001
        engine.receive_mutation(conns[conn_index], mutation, now)
        engine.take_effects()
        deadline = engine.next_deadline()
        if deadline is not None and deadline <= now:
            engine.handle_timer(now)
            for effect in engine.take_effects():
                if isinstance(effect, WriteBatch):
                    answer = databases[effect.project_id].answer(effect)
                    engine.receive_write_result(effect.project_id, answer, now)
                    engine.take_effects()
    return time.perf_counter() - start


def bench_patches(count: int) -> float:
    """Keystroke-like patches by one editor over 50 scenes; returns mutations per second."""
    engine, conns = _loaded_engine(1)
    mutations: list[tuple[int, Mutation]] = [
        (0, Patch(n + 1, "scenes", RowId(f"scene-{n % SCENES}"), {"heading": f"heading {n}"}))
        for n in range(count)
    ]
    return count / _drive(engine, conns, mutations)


def bench_mixed(count: int) -> float:
    """Three editors: 90% patches, 4% inserts, 4% deletes, 2% reorders; returns mutations per second."""
    engine, conns = _loaded_engine(3)
    rng = random.Random(7)
    mids = [0, 0, 0]
    inserted: list[str] = []
    mutations: list[tuple[int, Mutation]] = []
    for n in range(count):
        who = n % 3
        mids[who] += 1
        mid = mids[who]
        roll = rng.random()
        if roll < 0.04:
            row_id = f"new-{n}"
            inserted.append(row_id)
            mutation: Mutation = Insert(mid, "scenes", {"id": row_id, "heading": "new"})
        elif roll < 0.08 and inserted:
            mutation = Delete(mid, "scenes", RowId(inserted.pop(rng.randrange(len(inserted)))))
        elif roll < 0.10:
            mutation = Reorder(mid, "scenes", (RowId(f"scene-{rng.randrange(SCENES)}"),))
        else:
            mutation = Patch(mid, "scenes", RowId(f"scene-{rng.randrange(SCENES)}"), {"body": f"text {n}"})
        mutations.append((who, mutation))
    return count / _drive(engine, conns, mutations)


def bench_projects(count: int, projects: int) -> float:
    """Patches spread over ``projects`` open projects, one editor each, at 10 kHz of loop time: within
    the 1.5 s debounce every project has unsaved edits. Returns mutations per second."""
    engine = SyncEngine(jitter=random.random)
    ids = tuple(ProjectId(f"00000000-0000-4000-8000-{n:012d}") for n in range(projects))
    conns = [ConnId(f"conn-{n}") for n in range(projects)]
    for n, (project_id, conn) in enumerate(zip(ids, conns, strict=True)):
        engine.open_project(project_id, "bench", 0.0)
        project: dict[str, JsonValue] = {"id": project_id, "title": "Bench", "script": "", "version": 1}
        scenes = tuple(_scene(s, project=project_id) for s in range(SCENES))
        engine.receive_loaded(project_id, ProjectRows(project, scenes), 0.0)
        engine.attach(conn, ClientId(f"client-{n}"), UserId("bench"), project_id, None, 0.0)
    engine.take_effects()
    mutations: list[tuple[int, Mutation]] = [
        (
            n % projects,
            Patch(n // projects + 1, "scenes", RowId(f"scene-{n % SCENES}"), {"heading": f"h {n}"}),
        )
        for n in range(count)
    ]
    return count / _drive(engine, conns, mutations, ids)


@dataclass
class OutboxResult:
    """What one outbox run measured."""

    acks: int
    seconds: float
    latencies: list[float]
    commits: int

    @property
    def rate(self) -> float:
        return self.acks / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def bench_outbox(
    folder: Path, *, group_commit: bool, concurrency: int, seconds: float, rate: float | None = None
) -> OutboxResult:
    """``concurrency`` editors append for ``seconds``, each waiting for its ack before the next edit.

    Without ``rate`` every editor sends its next edit as soon as the last one is acknowledged (the
    most the outbox can take). With ``rate`` the editors together offer that many edits per second,
    each at a steady pace from a random phase, which is how editors type.
    """
    latencies: list[float] = []
    mids = itertools.count(1)
    stop_at = 0.0
    interval = 0.0 if rate is None else concurrency / rate

    async def editor(outbox: Outbox, n: int) -> None:
        client = ClientId(f"client-{n}")
        next_at = time.perf_counter() + random.random() * interval
        while time.perf_counter() < stop_at:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
            mid = next(mids)
            entry = JournalEntry(
                PROJECT,
                client,
                mid,
                Patch(mid, "scenes", RowId(f"scene-{mid % SCENES}"), {"heading": f"h {mid}"}),
            )
            started = time.perf_counter()
            await outbox.append(entry)
            latencies.append(time.perf_counter() - started)

    name = f"outbox-{'group' if group_commit else 'single'}-{rate or 'max'}.sqlite3"
    async with Outbox(folder / name, group_commit=group_commit) as outbox:
        start = time.perf_counter()
        stop_at = start + seconds
        async with asyncio.TaskGroup() as group:
            for n in range(concurrency):
                group.create_task(editor(outbox, n), name=f"bench.editor.{n}")
        elapsed = time.perf_counter() - start
        return OutboxResult(len(latencies), elapsed, latencies, outbox.commits)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each outbox run (default 3)")
    parser.add_argument("--concurrency", type=int, default=200, help="concurrent appenders (default 200)")
    parser.add_argument(
        "--mutations", type=int, default=200_000, help="mutations per core run (default 200000)"
    )
    parser.add_argument(
        "--rate", type=float, default=5000.0, help="edits/s offered in the paced run (default 5000)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the outbox files go (default: temp folder)"
    )
    args = parser.parse_args()

    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, {sys.platform}"
    )
    print()
    print("core (SyncEngine alone)")
    patches = bench_patches(args.mutations)
    print(f"  patches, 1 editor      {patches:>12,.0f} mutations/s")
    mixed = bench_mixed(args.mutations // 2)
    print(f"  mixed, 3 editors       {mixed:>12,.0f} mutations/s")
    for projects in (20, 200, 1000):
        spread = bench_projects(args.mutations // 2, projects)
        print(f"  patches, {projects:>4} projects {spread:>12,.0f} mutations/s")
    print()

    with tempfile.TemporaryDirectory(prefix="syncd-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"outbox ({args.concurrency} concurrent editors, {args.seconds:g} s each, files in {folder})")
        grouped = asyncio.run(
            bench_outbox(folder, group_commit=True, concurrency=args.concurrency, seconds=args.seconds)
        )
        single = asyncio.run(
            bench_outbox(folder, group_commit=False, concurrency=args.concurrency, seconds=args.seconds)
        )
        paced = asyncio.run(
            bench_outbox(
                folder, group_commit=True, concurrency=args.concurrency, seconds=args.seconds, rate=args.rate
            )
        )
    runs = (grouped, single, paced)
    print(f"  {'':<20}{'group commit':>16}{'fsync per edit':>16}{'group commit':>16}")
    print(f"  {'edits offered/s':<20}{'all it takes':>16}{'all it takes':>16}{args.rate:>16,.0f}")
    print(f"  {'acks/s':<20}" + "".join(f"{run.rate:>16,.0f}" for run in runs))
    for label, p in (("ack p50 (ms)", 50), ("ack p99 (ms)", 99)):
        print(f"  {label:<20}" + "".join(f"{run.percentile(p):>16.2f}" for run in runs))
    print(
        f"  {'ack mean (ms)':<20}"
        + "".join(f"{statistics.fmean(run.latencies) * 1000:>16.2f}" for run in runs)
    )
    print(f"  {'ack max (ms)':<20}" + "".join(f"{max(run.latencies) * 1000:>16.2f}" for run in runs))
    print(f"  {'commits':<20}" + "".join(f"{run.commits:>16,}" for run in runs))
    print(f"  {'edits per commit':<20}" + "".join(f"{run.acks / run.commits:>16.1f}" for run in runs))
    print(f"  group commit takes {grouped.rate / single.rate:.1f}x the edits of one fsync per edit")
    print(f"  load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
