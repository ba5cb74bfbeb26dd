"""Latency from another writer's commit to syncd's editors, beside the stand-in's own commit-to-client one.

Starts its own stack: the local Supabase stand-in with its PostgreSQL (``python -m localsupabase
--no-seed``, one process) and ``syncd run`` in Supabase mode against it (another process). One project with
a few scenes; a direct realtime-py subscriber (the stand-in's own latency, as any Supabase client sees it)
on UPDATEs of ``scenes`` of that project; K editors on the project, in editor processes of their own so
that reading their sockets competes neither with the writer nor with the direct subscriber. Then, for
each K and each rate, asyncpg commits ``update scenes set heading = <n>`` at that steady rate for a while.

For every change ``n`` it notes: the commit (the asyncpg call returned), the direct subscriber's callback,
and each editor's ``change`` frame. It prints, per K and rate: commit→direct and commit→editor p50/p95/p99,
and syncd's added latency, editor arrival minus direct arrival of the same change, p50/p95/p99 over every
(editor, change) pair. Every clock is ``time.perf_counter`` (CLOCK_MONOTONIC, shared by processes).

Run from the repository root::

    .venv/bin/python bench/db_to_editor.py                 # K = 1, 10, 50; 10, 100, 250, 500 changes/s
    .venv/bin/python bench/db_to_editor.py --editors 1 10 --rates 100 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from common import REPO_ROOT, STARTUP_TIMEOUT, percentile, start_standin, stop, subscribe_direct
from realtime import RealtimePostgresChangesListenEvent
from websockets.asyncio.client import ClientConnection, connect

ARRIVAL_TIMEOUT = 30.0
"""Seconds to wait for the last change of a run: above its throughput the stand-in falls seconds behind."""
SCENES = 20
"""Scenes the updates rotate over (one row per change would be as good; a few spread the row locks)."""
_ADDRESS = re.compile(r"editors connect to (ws://\S+)")
_PROFILED = (
    "import cProfile, sys, time\n"
    "from syncd.cli import main\n"
    "profiler = cProfile.Profile(time.process_time)\n"
    "try:\n"
    "    profiler.runcall(main, sys.argv[1:])\n"
    "finally:\n"
    "    profiler.dump_stats({path!r})\n"
)


# ---- numbers ----------------------------------------------------------------------------------------


def quantiles(values: list[float]) -> str:
    """``p50/p95/p99`` in milliseconds."""
    return "/".join(f"{percentile(values, q):.1f}" for q in (0.5, 0.95, 0.99))


# ---- editor processes ---------------------------------------------------------------------------------


async def _editor(url: str, project_id: str, arrivals: dict[int, float], ready: asyncio.Event) -> None:
    """One editor on a bare socket: note when each numbered heading arrives in a ``change``."""
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "protocol": 1,
                    "project_id": project_id,
                    "client_id": str(uuid.uuid4()),
                    "token": None,
                    "resume": None,
                }
            )
        )
        await _until_snapshot(ws)
        ready.set()
        async for message in ws:
            now = time.perf_counter()
            frame = json.loads(message)
            if frame.get("type") == "change" and frame.get("table") == "scenes":
                heading = (frame.get("set") or frame.get("row") or {}).get("heading")
                if isinstance(heading, str) and heading.isdigit():
                    arrivals.setdefault(int(heading), now)
            elif frame.get("type") == "snapshot":
                print(json.dumps({"warning": "snapshot after overflow"}), file=sys.stderr, flush=True)


async def _until_snapshot(ws: ClientConnection) -> None:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "snapshot":
            return
        if frame.get("type") == "error":
            raise RuntimeError(f"the daemon refused the editor: {frame}")


async def worker(url: str, project_id: str, count: int) -> None:
    """Editor process: ``count`` editors; prints ``ready``, then answers ``collect FIRST LAST`` on stdin."""
    arrivals: list[dict[int, float]] = [{} for _ in range(count)]
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_editor(url, project_id, arrivals[i], readies[i])) for i in range(count)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] != "collect":
            break
        first, last = int(line[1]), int(line[2])
        deadline = time.perf_counter() + ARRIVAL_TIMEOUT
        while time.perf_counter() < deadline and not all(  # noqa: ASYNC110 (polls another task's dicts)
            all(n in seen for n in range(first, last)) for seen in arrivals
        ):
            await asyncio.sleep(0.05)
        out = [{str(n): seen[n] for n in range(first, last) if n in seen} for seen in arrivals]
        print(json.dumps(out), flush=True)
    for task in tasks:
        task.cancel()


@dataclass
class EditorGroup:
    """The editor processes of one K."""

    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    @classmethod
    async def start(cls, url: str, project_id: str, editors: int, procs: int) -> EditorGroup:
        """Start ``procs`` processes sharing ``editors`` editors; return once all are in the project."""
        group = cls()
        shares = [editors // procs + (1 if i < editors % procs else 0) for i in range(procs)]
        for share in (s for s in shares if s):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                url,
                project_id,
                str(share),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO_ROOT,
                limit=256 * 1024 * 1024,  # one JSON line holds every arrival of a run
            )
            group.processes.append(process)
        for process in group.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"an editor process failed to start: {line!r}")
        return group

    async def collect(self, first: int, last: int) -> list[dict[int, float]]:
        """Every editor's arrival times of changes ``first`` to ``last - 1``."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"collect {first} {last}\n".encode())
            await process.stdin.drain()
        editors: list[dict[int, float]] = []
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), ARRIVAL_TIMEOUT + 30)
            editors.extend({int(k): float(v) for k, v in seen.items()} for seen in json.loads(line))
        return editors

    async def stop(self) -> None:
        """End the editor processes."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


# ---- the stack -----------------------------------------------------------------------------------------


async def start_syncd(
    info: dict[str, str], state_dir: Path, profile: Path | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``syncd run`` in Supabase mode (under cProfile with ``profile``); return it and its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "SUPABASE_"))}
    env.update(
        {
            "SUPABASE_URL": info["url"],
            "SUPABASE_SERVICE_KEY": info["service_key"],
            "SUPABASE_JWT_SECRET": info["jwt_secret"],
            "SYNCD_AUTH__ALLOW_ANONYMOUS": "true",
            "SYNCD_SUPABASE__RESYNC_INTERVAL": "3600",
            "SYNCD_LOG__LEVEL": "WARNING",
        }
    )
    # CPU time, not wall time: on a busy machine the wall clock mostly measures waiting for a core.
    profiler = ["-c", _PROFILED.format(path=str(profile))] if profile is not None else ["-m", "syncd"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *profiler,
        "run",
        "--state-dir",
        str(state_dir),
        "--port",
        "0",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        if not line:
            raise RuntimeError("syncd exited before printing its address")
        if m := _ADDRESS.search(line.decode()):
            return process, m.group(1)


@dataclass
class Direct:
    """The direct realtime-py subscriber: arrival time of each numbered heading."""

    arrivals: dict[int, float] = field(default_factory=dict)

    def on_change(self, payload: Any) -> None:
        """realtime-py callback (synchronous: it only records)."""
        now = time.perf_counter()
        heading = payload["data"]["record"].get("heading")
        if isinstance(heading, str) and heading.isdigit():
            self.arrivals.setdefault(int(heading), now)


# ---- one run --------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What one (K, rate) run measured, in milliseconds."""

    editors: int
    rate: float
    changes: int
    direct: list[float]
    editor: list[float]
    added: list[float]
    first_added: list[float]
    """Per change, the first editor's arrival minus the direct one (the editors' own queueing left out)."""
    lost_direct: int
    lost_editor: int
    syncd_cpu_us: float
    """syncd's CPU time (user + system) per change, in microseconds."""


async def run_load(
    pool: asyncpg.Pool, scenes: list[str], rate: float, duration: float, first: int
) -> tuple[range, dict[int, float]]:
    """Commit numbered heading updates at a steady ``rate`` for ``duration`` seconds."""
    count = max(1, int(rate * duration))
    numbers = range(first, first + count)
    committed: dict[int, float] = {}

    async def commit(n: int) -> None:
        await pool.execute(
            "update public.scenes set heading = $2 where id = $1", scenes[n % len(scenes)], str(n)
        )
        committed[n] = time.perf_counter()

    start = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()
    for index, n in enumerate(numbers):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(commit(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    return numbers, committed


async def measure(
    pool: asyncpg.Pool,
    scenes: list[str],
    direct: Direct,
    group: EditorGroup,
    editors: int,
    rate: float,
    duration: float,
    first: int,
    syncd_pid: int,
) -> Result:
    """One run: commit at ``rate``, then gather the arrivals of the direct subscriber and every editor."""
    cpu_before = cpu_seconds(syncd_pid)
    numbers, committed = await run_load(pool, scenes, rate, duration, first)
    arrivals = await group.collect(numbers.start, numbers.stop)
    cpu = cpu_seconds(syncd_pid) - cpu_before
    deadline = time.perf_counter() + ARRIVAL_TIMEOUT
    while time.perf_counter() < deadline and not all(n in direct.arrivals for n in numbers):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    to_direct = [(direct.arrivals[n] - committed[n]) * 1000 for n in numbers if n in direct.arrivals]
    to_editor: list[float] = []
    added: list[float] = []
    lost_editor = 0
    first_added = [
        (min(seen[n] for seen in arrivals if n in seen) - direct.arrivals[n]) * 1000
        for n in numbers
        if n in direct.arrivals and any(n in seen for seen in arrivals)
    ]
    for seen in arrivals:
        for n in numbers:
            if n not in seen:
                lost_editor += 1
                continue
            to_editor.append((seen[n] - committed[n]) * 1000)
            if n in direct.arrivals:
                added.append((seen[n] - direct.arrivals[n]) * 1000)
    return Result(
        editors,
        rate,
        len(numbers),
        to_direct,
        to_editor,
        added,
        first_added,
        len(numbers) - len(to_direct),
        lost_editor,
        cpu / len(numbers) * 1e6,
    )


async def main(args: argparse.Namespace) -> None:
    """Start the stack, run every (K, rate) and print the table."""
    standin, info = await start_standin()
    print(HEADER, flush=True)
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as state:
            syncd, url = await start_syncd(info, Path(state) / "state", args.profile_syncd)
            try:
                pool = await asyncpg.create_pool(info["db_url"], min_size=4, max_size=16)
                try:
                    project_id = str(
                        await pool.fetchval(
                            "insert into public.projects (title) values ('bench') returning id"
                        )
                    )
                    scenes = [
                        str(
                            await pool.fetchval(
                                "insert into public.scenes (project_id, scene_index, heading)"
                                " values ($1::uuid, $2, 'scene') returning id",
                                project_id,
                                i,
                            )
                        )
                        for i in range(SCENES)
                    ]
                    direct = Direct()
                    client = await subscribe_direct(
                        info,
                        project_id,
                        RealtimePostgresChangesListenEvent.Update,
                        direct.on_change,
                        "bench-direct",
                    )
                    first = 0
                    try:
                        for editors in args.editors:
                            group = await EditorGroup.start(
                                url, project_id, editors, min(editors, args.procs)
                            )
                            try:
                                # Warm up: the project is open and its Realtime channel listens.
                                await measure(pool, scenes, direct, group, editors, 20, 0.5, first, syncd.pid)
                                first += 10
                                for rate in args.rates:
                                    result = await measure(
                                        pool,
                                        scenes,
                                        direct,
                                        group,
                                        editors,
                                        rate,
                                        args.duration,
                                        first,
                                        syncd.pid,
                                    )
                                    first += result.changes
                                    results.append(result)
                                    print(_row(result), flush=True)
                            finally:
                                await group.stop()
                    finally:
                        await client.close()
                finally:
                    await pool.close()
            finally:
                await stop(syncd)
    finally:
        await stop(standin)


def _row(r: Result) -> str:
    return (
        f"| {r.editors} | {r.rate:g}/s | {r.changes} | {quantiles(r.direct)} | {quantiles(r.editor)}"
        f" | {quantiles(r.added)} | {quantiles(r.first_added)} | {r.lost_direct} | {r.lost_editor}"
        f" | {r.syncd_cpu_us:.0f} |"
    )


HEADER = (
    "| K editors | rate | changes | commit→direct p50/p95/p99 ms | commit→editor p50/p95/p99 ms"
    " | added by syncd p50/p95/p99 ms | added, first editor p50/p95/p99 ms"
    " | lost (direct) | lost (editor x change) | syncd CPU µs/change |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--editors", type=int, nargs="+", default=[1, 10, 50], help="K values (default 1 10 50)"
    )
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[10, 100, 250, 500],
        help="changes/s (default 10 100 250 500)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--procs", type=int, default=2, help="editor processes per K (default 2)")
    parser.add_argument(
        "--profile-syncd", type=Path, metavar="PATH", help="run syncd under cProfile, stats to PATH"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(worker(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        asyncio.run(main(parse_args()))
