"""Benchmark of the replicated journal of cluster mode (syncd/cluster/journal.py).

Starts a three-node NATS cluster with JetStream on loopback (tests/support/nats.py), then appends
to an R3 journal stream with ``concurrency`` editors at once, each waiting for its ack before its
next edit (closed loop), and prints appends per second and the ack latency (p50, p99, max). With
``--kill``, the node the writer is connected to is killed halfway: the figures then include the
failover, and the run checks that a fresh reader loads every acknowledged entry.

Run from the repository root:

    .venv/bin/python bench/cluster_journal.py
    .venv/bin/python bench/cluster_journal.py --seconds 5 --concurrency 200 --kill
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from urllib.parse import urlsplit

from common import REPO_ROOT, percentile

from syncd.cluster.connection import connect_nats
from syncd.cluster.journal import ReplicatedJournal
from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.inputs import Patch
from syncd.core.journal import JournalEntry

sys.path.insert(0, str(REPO_ROOT))  # the NATS cluster of the tests
from tests.support.nats import NatsCluster

PROJECTS = [ProjectId(f"5f0c0000-0000-4000-8000-{i:012d}") for i in range(8)]


async def run(cluster: NatsCluster, seconds: float, concurrency: int, kill: bool) -> None:
    client = await connect_nats(cluster.urls, "bench")
    js = client.jetstream()
    journal = ReplicatedJournal(js, stream="BENCH", subject_prefix="bench", writer_id="bench")
    latencies: list[float] = []
    acked: dict[ProjectId, int] = dict.fromkeys(PROJECTS, 0)
    stop_at = 0.0

    async def editor(n: int) -> None:
        project, author, mid = PROJECTS[n % len(PROJECTS)], ClientId(f"editor-{n}"), 0
        while time.monotonic() < stop_at:
            mid += 1
            entry = JournalEntry(
                project, author, mid, Patch(mid, "scenes", RowId("s-1"), {"heading": "x" * 40})
            )
            started = time.perf_counter()
            await journal.append_nowait(entry)
            latencies.append(time.perf_counter() - started)
            acked[project] += 1

    async with journal:
        stop_at = time.monotonic() + seconds
        tasks = [asyncio.create_task(editor(n)) for n in range(concurrency)]
        if kill:
            await asyncio.sleep(seconds / 2)
            assert client.connected_url is not None
            victim = cluster.index_of_port(urlsplit(client.connected_url.geturl()).port or 0)
            await asyncio.to_thread(cluster.kill, victim)
            print(f"killed node n{victim} at {seconds / 2:.1f} s")
        await asyncio.gather(*tasks)
        publishes = journal.publishes
    await client.close()
    total = len(latencies)
    print(f"R3 journal, {concurrency} editors, {seconds:.1f} s, {platform.python_implementation()}")
    print(f"  appends/s      {total / seconds:10.0f}   ({total} acked, {publishes} publishes sent)")
    print(
        f"  ack latency    p50 {percentile(latencies, 0.5) * 1000:.2f} ms   p99 "
        f"{percentile(latencies, 0.99) * 1000:.2f} ms   max {max(latencies, default=0) * 1000:.2f} ms"
    )
    if kill:
        reader_client = await connect_nats(cluster.urls, "bench-reader")
        reader = ReplicatedJournal(
            reader_client.jetstream(), stream="BENCH", subject_prefix="bench", writer_id="r"
        )
        async with reader:
            loaded = {p: len(await reader.load(p)) for p in PROJECTS}
        await reader_client.close()
        lost = sum(max(0, acked[p] - loaded[p]) for p in PROJECTS)
        print(f"  after the kill: {sum(loaded.values())} entries loaded, acknowledged and lost: {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--kill", action="store_true", help="kill the writer's NATS node halfway")
    args = parser.parse_args()
    with NatsCluster() as cluster:
        asyncio.run(run(cluster, args.seconds, args.concurrency, args.kill))


if __name__ == "__main__":
    main()
