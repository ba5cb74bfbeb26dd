"""Commit-to-client latency of the local Supabase stand-in's Realtime.

Starts ``python -m tests.support.localsupabase`` (its own PostgreSQL and the stand-in, in a separate
process), subscribes with realtime-py to INSERTs on ``public.scenes`` filtered on one project, commits
rows with asyncpg and measures, for each row, the time from the commit returning to the realtime-py
callback seeing it. Two workloads:

* idle: one change at a time, each committed at a random moment after the previous one arrived, so the
  commits fall anywhere in the poller's cycle;
* load: a steady rate of commits (100/s by default) for a while.

Run from the repository root::

    .venv/bin/python bench/standin_latency.py              # 200 idle samples, then 100/s for 20 s
    .venv/bin/python bench/standin_latency.py --samples 50 --duration 5

It prints p50/p95/p99 (and mean, max, lost) per workload.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 120.0
ARRIVAL_TIMEOUT = 10.0


@dataclass
class Tracker:
    """Commit and arrival times of every change, by the sequence number written into the row."""

    committed: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, float] = field(default_factory=dict)
    waiters: dict[int, asyncio.Event] = field(default_factory=dict)
    outstanding: set[int] = field(default_factory=set)
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def on_change(self, payload: Any) -> None:
        """realtime-py callback (synchronous, so it only records)."""
        now = time.perf_counter()
        sequence = int(payload["data"]["record"]["heading"])
        self.arrived.setdefault(sequence, now)
        waiter = self.waiters.pop(sequence, None)
        if waiter is not None:
            waiter.set()
        if self.outstanding:
            self.outstanding.discard(sequence)
            if not self.outstanding:
                self.all_arrived.set()

    def expect(self, sequences: range) -> None:
        """Watch ``sequences``: :attr:`all_arrived` is set once every one of them has arrived."""
        self.outstanding = set(sequences)
        self.all_arrived.clear()

    def latencies_ms(self, sequences: range) -> list[float]:
        """Latencies in milliseconds of the changes in ``sequences`` that arrived."""
        return [
            (self.arrived[s] - self.committed[s]) * 1000
            for s in sequences
            if s in self.arrived and s in self.committed
        ]


def percentile(values: list[float], share: float) -> float:
    """Return the ``share`` quantile (0..1) of ``values`` by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(name: str, latencies: list[float], expected: int) -> str:
    """One line of results."""
    if not latencies:
        return f"{name:<22} no change arrived (expected {expected})"
    return (
        f"{name:<22} n={len(latencies):<5} p50={percentile(latencies, 0.50):7.1f} ms"
        f"  p95={percentile(latencies, 0.95):7.1f} ms  p99={percentile(latencies, 0.99):7.1f} ms"
        f"  mean={statistics.fmean(latencies):7.1f} ms  max={max(latencies):7.1f} ms"
        f"  lost={expected - len(latencies)}"
    )


async def start_stack() -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start the stand-in in its own process and return it with its JSON line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.localsupabase",
        "--no-seed",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
    if not line:
        raise RuntimeError("the stand-in exited before printing its JSON line")
    return process, json.loads(line)


async def stop_stack(process: asyncio.subprocess.Process) -> None:
    """Ask the stand-in to stop and wait for it."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


async def subscribe(info: dict[str, str], project_id: str, tracker: Tracker) -> AsyncRealtimeClient:
    """Connect realtime-py and return once the server says "Subscribed to PostgreSQL"."""
    client = AsyncRealtimeClient(f"{info['url']}/realtime/v1", token=info["service_key"])
    ready = asyncio.Event()
    failed: list[str] = []

    def on_system(payload: Any) -> None:
        if payload.message == "Subscribed to PostgreSQL":
            ready.set()

    def on_status(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        if state != RealtimeSubscribeStates.SUBSCRIBED:
            failed.append(f"{state}: {error}")
            ready.set()

    channel = client.channel("latency")
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.Insert,
        tracker.on_change,
        table="scenes",
        schema="public",
        filter=f"project_id=eq.{project_id}",
    )
    channel.on_system(on_system)
    await channel.subscribe(on_status)
    await asyncio.wait_for(ready.wait(), 30)
    if failed:
        raise RuntimeError(f"subscription failed: {failed}")
    return client


async def commit(pool: asyncpg.Pool, tracker: Tracker, project_id: str, sequence: int) -> None:
    """Insert one scene carrying ``sequence`` and note when the commit returned."""
    await pool.execute(
        "insert into public.scenes (project_id, scene_index, heading) values ($1::uuid, $2, $3)",
        project_id,
        sequence,
        str(sequence),
    )
    tracker.committed[sequence] = time.perf_counter()


async def run_idle(pool: asyncpg.Pool, tracker: Tracker, project_id: str, samples: int, first: int) -> range:
    """One change at a time, each after a random pause, waiting for it to arrive before the next."""
    sequences = range(first, first + samples)
    for sequence in sequences:
        # A random pause spreads the commits over the poller's idle cycle instead of locking onto it.
        await asyncio.sleep(random.uniform(0.0, 0.6))
        waiter = asyncio.Event()
        tracker.waiters[sequence] = waiter
        await commit(pool, tracker, project_id, sequence)
        try:
            await asyncio.wait_for(waiter.wait(), ARRIVAL_TIMEOUT)
        except TimeoutError:
            tracker.waiters.pop(sequence, None)
    return sequences


async def run_load(
    pool: asyncpg.Pool, tracker: Tracker, project_id: str, rate: float, duration: float, first: int
) -> range:
    """Commits at a steady ``rate`` per second for ``duration`` seconds, then waits for stragglers."""
    count = int(rate * duration)
    sequences = range(first, first + count)
    tracker.expect(sequences)
    start = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()
    for index, sequence in enumerate(sequences):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(commit(pool, tracker, project_id, sequence))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tracker.all_arrived.wait(), ARRIVAL_TIMEOUT)
    return sequences


async def main(args: argparse.Namespace) -> None:
    """Run both workloads against a fresh stand-in and print the results."""
    process, info = await start_stack()
    try:
        pool = await asyncpg.create_pool(info["db_url"], min_size=2, max_size=8)
        try:
            project_id = await pool.fetchval(
                "insert into public.projects (title) values ('bench') returning id::text"
            )
            tracker = Tracker()
            client = await subscribe(info, project_id, tracker)
            try:
                idle = await run_idle(pool, tracker, project_id, args.samples, first=0)
                load = await run_load(pool, tracker, project_id, args.rate, args.duration, first=args.samples)
            finally:
                await client.close()
        finally:
            await pool.close()
    finally:
        await stop_stack(process)
    print(f"commit-to-client latency, realtime-py {_version('realtime')}, stand-in at {info['url']}")
    print(summary("idle (1 at a time)", tracker.latencies_ms(idle), len(idle)))
    print(summary(f"load ({args.rate:g}/s, {args.duration:g} s)", tracker.latencies_ms(load), len(load)))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=200, help="idle samples (default 200)")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="changes per second under load (default 100)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
