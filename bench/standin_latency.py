"""Commit-to-client latency of the local Supabase stand-in's Realtime.

Starts ``python -m localsupabase`` (its own PostgreSQL and the stand-in, in a separate
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
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from common import percentile, start_standin, stop, subscribe_direct
from realtime import RealtimePostgresChangesListenEvent

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
    process, info = await start_standin()
    try:
        pool = await asyncpg.create_pool(info["db_url"], min_size=2, max_size=8)
        try:
            project_id = await pool.fetchval(
                "insert into public.projects (title) values ('bench') returning id::text"
            )
            tracker = Tracker()
            client = await subscribe_direct(
                info, project_id, RealtimePostgresChangesListenEvent.Insert, tracker.on_change, "latency"
            )
            try:
                idle = await run_idle(pool, tracker, project_id, args.samples, first=0)
                load = await run_load(pool, tracker, project_id, args.rate, args.duration, first=args.samples)
            finally:
                await client.close()
        finally:
            await pool.close()
    finally:
        await stop(process)
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
