"""Cluster mode, one instance against three at the same load: latency, CPU per delivered change, relay.

Starts a three-node NATS cluster with JetStream (tests/support/nats.py) and the Supabase stand-in
(with its own PostgreSQL), creates M projects through its REST API, then runs two rounds, each
with fresh ``syncd run`` processes in Supabase and cluster mode (their own lease bucket, journal
stream and subjects):

* ``1 instance``: every editor on the one instance, which owns every project;
* ``3 instances``: each project's editors spread over the three instances. The first editor of a
  project opens it, so the owners are spread too, and about two editors in three are relayed to
  their project's owner through NATS.

The load is the one of ``bench/fanout.py`` (its editors and load generator are reused): N bare
WebSocket editors, editor i on project i mod M, R ``patch`` frames per second in total, open loop;
every other editor of the project records the latency from send to arrival. Measured per round:
latency p50/p99, delivered changes per second, and CPU time per delivered change, of the syncd
processes together and of the NATS servers together (utime + stime from ``/proc``).

Run from the repository root::

    .venv/bin/python bench/cluster.py                     # 60 editors, 6 projects, 100 edits/s, 10 s
    .venv/bin/python bench/cluster.py --editors 30 --rate 50 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import REPO_ROOT, percentile, start_standin, stop
from fanout import Editor, Results, cpu_seconds, open_editor, read_loop, send_load, start_daemon

sys.path.insert(0, str(REPO_ROOT))  # the NATS cluster of the tests
from tests.support.nats import NatsCluster


@dataclass(frozen=True)
class Figures:
    """One round's results."""

    instances: int
    relayed: int
    editors: int
    sent: int
    delivered: int
    missing: int
    wall: float
    p50: float
    p99: float
    syncd_cpu: float
    nats_cpu: float

    def line(self) -> str:
        """One row of the results table."""
        per = 1e6 / max(1, self.delivered)
        return (
            f"| {self.instances} | {self.relayed}/{self.editors} | {self.delivered / self.wall:.0f} |"
            f" {self.missing} | {self.p50:.2f} ms | {self.p99:.2f} ms |"
            f" {100 * self.syncd_cpu / self.wall:.1f} % | {self.syncd_cpu * per:.0f} µs |"
            f" {self.nats_cpu * per:.0f} µs |"
        )


async def create_projects(info: dict[str, str], count: int) -> list[str]:
    """Create ``count`` projects with the service key; return their ids."""
    key = info["service_key"]
    headers = {"apikey": key, "Authorization": f"Bearer {key}", "Prefer": "return=representation"}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{info['url']}/rest/v1/projects",
            json=[{"title": f"Bench {i}"} for i in range(count)],
            headers=headers,
        )
        answer.raise_for_status()
        return [str(row["id"]) for row in answer.json()]


def instance_env(info: dict[str, str], nats: NatsCluster, name: str, tag: str, rate: float) -> dict[str, str]:
    """The environment of one cluster-mode instance in Supabase mode."""
    return {
        "SUPABASE_URL": info["url"],
        "SUPABASE_SERVICE_KEY": info["service_key"],
        "SUPABASE_JWT_SECRET": info["jwt_secret"],
        "SYNCD_AUTH__ALLOW_ANONYMOUS": "true",
        "SYNCD_LOG__LEVEL": "WARNING",
        "SYNCD_GATEWAY__MUTATION_RATE": str(max(200.0, 20 * rate)),
        "SYNCD_GATEWAY__MUTATION_BURST": "1000",
        "SYNCD_CLUSTER__ENABLED": "true",
        "SYNCD_CLUSTER__NATS_URLS": json.dumps(nats.urls),
        "SYNCD_CLUSTER__INSTANCE_ID": name,
        "SYNCD_CLUSTER__LEASE_BUCKET": f"bench_leases_{tag}",
        "SYNCD_CLUSTER__JOURNAL_STREAM": f"BENCH_JOURNAL_{tag}",
        "SYNCD_CLUSTER__SUBJECT_PREFIX": f"bench_{tag}",
    }


async def run_round(
    info: dict[str, str], nats: NatsCluster, projects: list[str], count: int, args: argparse.Namespace
) -> Figures:
    """Start ``count`` instances, open the editors, measure, stop them."""
    work = Path(tempfile.mkdtemp(prefix="syncd-cluster-bench-"))
    tag = uuid.uuid4().hex[:8]
    daemons: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    editors: list[Editor] = []
    readers: list[asyncio.Task[None]] = []
    results = Results()
    try:
        for i in range(count):
            name = f"i{i}"
            (work / name).mkdir()
            env = instance_env(info, nats, name, tag, args.rate / args.editors)
            proc, url = await asyncio.to_thread(start_daemon, work / name, work / f"{name}.log", env)
            daemons.append(proc)
            urls.append(url)
        # Editor i on project i mod M and instance (i + i div M) mod count: each project's editors
        # spread over every instance. One at a time: the first of a project decides its owner.
        where = [(i + i // len(projects)) % count for i in range(args.editors)]
        for i in range(args.editors):
            editors.append(await open_editor(urls[where[i]], projects[i % len(projects)]))
        owners = {p: i % count for i, p in enumerate(projects)}
        relayed = sum(owners[e.project_id] != where[i] for i, e in enumerate(editors))
        readers = [asyncio.create_task(read_loop(e, results)) for e in editors]
        await send_load(editors, args.rate, args.warmup)
        pids = [d.pid for d in daemons]
        nats_pids = [nats.pid(i) for i in range(nats.size)]
        syncd_before = sum(cpu_seconds(pid) for pid in pids)
        nats_before = sum(cpu_seconds(pid) for pid in nats_pids)
        started = time.monotonic()
        results.since_ns = time.monotonic_ns()
        sent_to = await send_load(editors, args.rate, args.duration)
        wall = time.monotonic() - started
        syncd_cpu = sum(cpu_seconds(pid) for pid in pids) - syncd_before
        nats_cpu = sum(cpu_seconds(pid) for pid in nats_pids) - nats_before
        members = {p: sum(1 for e in editors if e.project_id == p) for p in projects}
        results.expected = sum(n * (members[p] - 1) for p, n in sent_to.items())
        if results.deliveries >= results.expected:
            results.all_in.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await results.all_in.wait()
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(e.ws.close() for e in editors), return_exceptions=True)
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    lat_ms = [ns / 1e6 for ns in results.latencies_ns]
    return Figures(
        instances=count,
        relayed=relayed,
        editors=len(editors),
        sent=sum(sent_to.values()),
        delivered=results.deliveries,
        missing=max(0, results.expected - results.deliveries),
        wall=wall,
        p50=percentile(lat_ms, 0.5),
        p99=percentile(lat_ms, 0.99),
        syncd_cpu=syncd_cpu,
        nats_cpu=nats_cpu,
    )


async def run(args: argparse.Namespace) -> int:
    """Start NATS and the stand-in, run both rounds, print the table."""
    nats = NatsCluster()
    await asyncio.to_thread(nats.start)
    standin, info = await start_standin()
    rounds: list[Figures] = []
    try:
        projects = await create_projects(info, args.projects)
        for count in (1, 3):
            print(f"{count} instance(s): {args.editors} editors, {args.rate:g} edits/s ...", flush=True)
            rounds.append(await run_round(info, nats, projects, count, args))
    finally:
        await stop(standin)
        await asyncio.to_thread(nats.stop)
    print()
    print(
        f"cluster mode, {args.editors} editors on {args.projects} projects, {args.rate:g} edits/s,"
        f" {args.duration:g} s measured"
    )
    print()
    print(
        "| instances | editors relayed | delivered/s | missing | p50 | p99 | syncd CPU (one core) |"
        " syncd CPU per delivered change | NATS CPU per delivered change |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for figures in rounds:
        print(figures.line())
    return 0


def main() -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--editors", type=int, default=60)
    parser.add_argument("--projects", type=int, default=6)
    parser.add_argument("--rate", type=float, default=100.0, help="edits per second in total")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the state directories and logs")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
