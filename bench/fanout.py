"""Fan-out latency and cost of ``syncd run``: N editors on M projects, R edits per second in total.

Starts its own daemon (``python -m syncd run`` on a free port, in the embedded local mode, with a
fresh state directory outside the repository so that no ``config/syncd.toml`` applies), creates M
projects with ``syncd project create``, connects N editors with bare WebSockets (editor i opens
project i mod M) and then, open loop, sends R ``patch`` frames per second
in total from editors picked at random. Each patch carries its send time (``time.monotonic_ns()``) as
the project title; every *other* editor of the project that receives the ``change`` records the
latency from send to arrival. Measured:

* latency p50/p99 (and p90, max) over every delivery to another editor, after a warm-up;
* delivered changes per second, and deliveries missing at the end;
* the daemon's CPU over the measured window, as a share of one core (``/proc/<pid>/stat`` utime+stime);
* memory per idle connection: the daemon's RSS with N idle editors minus its RSS with none, over N.

The load generator runs in this one asyncio process and shares the machine's cores with the daemon
(``--pin`` puts the daemon and the generator on different cores). Run from the repository root::

    .venv/bin/python bench/fanout.py                       # 200 editors, 20 projects, 500 edits/s, 30 s
    .venv/bin/python bench/fanout.py --editors 50 --projects 5 --rate 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import percentile
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

STARTUP_TIMEOUT = 30.0
ADDRESS = re.compile(r"editors connect to (ws://\S+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

TARGETS = {"p50": 1.5, "p99": 5.0, "cpu": 15.0, "rss": 30.0}
"""The issue's targets: latency in ms, CPU in % of one core, KiB of RSS per idle connection."""


# ---- the daemon -------------------------------------------------------------------------------------


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without syncd or Supabase settings (a local-mode daemon), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "SUPABASE_", "NOTIFY_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def create_projects(state_dir: Path, count: int) -> list[str]:
    """Create ``count`` projects with ``syncd project create``, a few at a time; return their ids."""
    commands = [
        [sys.executable, "-m", "syncd", "project", "create", f"Bench {i}", "--state-dir", str(state_dir)]
        for i in range(count)
    ]
    ids: list[str] = []
    for start in range(0, count, 4):
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=clean_env({}), cwd=state_dir.parent)
            for cmd in commands[start : start + 4]
        ]
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"syncd project create failed with {proc.returncode}")
            ids.append(out.strip())
    return ids


def start_daemon(state_dir: Path, log_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``syncd run`` and return it with the editor URL it printed."""
    cmd = [sys.executable, "-m", "syncd", "run", "--state-dir", str(state_dir), "--port", "0"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=clean_env(env), cwd=state_dir.parent
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"syncd exited early ({proc.wait()}); see {log_path}")
        if match := ADDRESS.search(line):
            return proc, match.group(1)
    proc.kill()
    raise TimeoutError(f"syncd did not print its address within {STARTUP_TIMEOUT} s")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


# ---- the editors ------------------------------------------------------------------------------------


@dataclass
class Results:
    """What the editors saw."""

    latencies_ns: list[int] = field(default_factory=list)
    deliveries: int = 0
    since_ns: int = -1
    """Deliveries of edits sent from this time on are counted; -1: not measuring yet."""
    errors: list[str] = field(default_factory=list)
    expected: int = -1
    """Deliveries to wait for once the load is sent; -1 while sending."""
    all_in: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class Editor:
    """One editor connection and its mutation counter."""

    ws: ClientConnection
    client_id: str
    project_id: str
    next_mid: int = 1


async def open_editor(url: str, project_id: str) -> Editor:
    """Connect, say hello and read up to the snapshot."""
    ws = await connect(url, compression=None, max_size=None, open_timeout=30)
    editor = Editor(ws, str(uuid.uuid4()), project_id)
    hello = {
        "type": "hello",
        "protocol": 1,
        "project_id": project_id,
        "client_id": editor.client_id,
        "token": None,
        "resume": None,
    }
    await ws.send(json.dumps(hello))
    while json.loads(await ws.recv())["type"] != "snapshot":
        pass
    return editor


async def read_loop(editor: Editor, results: Results) -> None:
    """Record the latency of every change that another editor sent."""
    me = editor.client_id
    with contextlib.suppress(ConnectionClosed):
        async for message in editor.ws:
            now = time.monotonic_ns()
            frame: dict[str, Any] = json.loads(message)
            kind = frame["type"]
            if kind == "change":
                if frame["origin"] != "editor" or frame["client_id"] == me or frame["table"] != "projects":
                    continue
                sent_ns = int(frame["set"]["title"])
                if 0 <= results.since_ns <= sent_ns:
                    results.latencies_ns.append(now - sent_ns)
                    results.deliveries += 1
                    if results.deliveries == results.expected:
                        results.all_in.set()
            elif kind == "error":
                results.errors.append(f"{frame['code']}: {frame['message']}")


async def send_load(editors: list[Editor], rate: float, duration: float) -> dict[str, int]:
    """Send ``rate`` patches per second for ``duration`` seconds, open loop; return how many per project."""
    interval = 1.0 / rate
    start = time.monotonic()
    sent = 0
    per_project: dict[str, int] = {}
    total = int(rate * duration)
    while sent < total:
        due = start + sent * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # When late (the loop was busy), catch up: every patch that is due goes now.
        while sent < total and start + sent * interval <= time.monotonic():
            editor = random.choice(editors)
            mid = editor.next_mid
            editor.next_mid += 1
            frame = {
                "type": "patch",
                "mid": mid,
                "table": "projects",
                "id": editor.project_id,
                "set": {"title": str(time.monotonic_ns())},
            }
            await editor.ws.send(json.dumps(frame, separators=(",", ":")))
            sent += 1
            per_project[editor.project_id] = per_project.get(editor.project_id, 0) + 1
    return per_project


# ---- reporting --------------------------------------------------------------------------------------


def row(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
    """One line of the results table."""
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    return f"| {name:<34} | {value:>14} | {target:>10} | {verdict:<6} |"


# ---- main -------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    """Start the daemon, measure, print the table; return the exit code."""
    work = Path(tempfile.mkdtemp(prefix="syncd-fanout-"))
    state_dir = work / "state"
    state_dir.mkdir()
    env = {
        "SYNCD_LOG__LEVEL": args.log_level,
        # The generator must not be refused: allow every editor many times the average rate.
        "SYNCD_GATEWAY__MUTATION_RATE": str(max(200.0, 20 * args.rate / args.editors)),
        "SYNCD_GATEWAY__MUTATION_BURST": "1000",
    }
    print(f"creating {args.projects} projects ...", flush=True)
    projects = create_projects(state_dir, args.projects)
    daemon, url = start_daemon(state_dir, work / "syncd.log", env)
    if args.pin and os.cpu_count() and os.cpu_count() >= 2:  # type: ignore[operator]
        os.sched_setaffinity(daemon.pid, {0})
        os.sched_setaffinity(0, {1})
    editors: list[Editor] = []
    results = Results()
    readers: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(1.0)  # let the daemon finish starting before its baseline RSS is read
        rss_none = rss_bytes(daemon.pid)
        print(f"daemon pid {daemon.pid}; connecting {args.editors} editors to {url} ...", flush=True)
        for start in range(0, args.editors, 50):
            batch = range(start, min(start + 50, args.editors))
            editors += await asyncio.gather(*(open_editor(url, projects[i % len(projects)]) for i in batch))
        readers = [asyncio.create_task(read_loop(editor, results)) for editor in editors]
        await asyncio.sleep(args.settle)
        rss_idle = rss_bytes(daemon.pid)

        print(f"sending {args.rate:g} edits/s for {args.warmup:g} s of warm-up and {args.duration:g} s ...")
        await send_load(editors, args.rate, args.warmup)
        cpu_before, bench_before, wall_before = cpu_seconds(daemon.pid), time.process_time(), time.monotonic()
        results.since_ns = time.monotonic_ns()
        sent_to = await send_load(editors, args.rate, args.duration)
        wall = time.monotonic() - wall_before
        cpu_daemon = cpu_seconds(daemon.pid) - cpu_before
        cpu_bench = time.process_time() - bench_before
        sent = sum(sent_to.values())
        members = {p: sum(1 for e in editors if e.project_id == p) for p in projects}
        expected = sum(count * (members[p] - 1) for p, count in sent_to.items())
        results.expected = expected
        if results.deliveries >= expected:
            results.all_in.set()
        # Wait for the last changes to arrive (or give up after a few seconds).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await results.all_in.wait()
        rss_loaded = rss_bytes(daemon.pid)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(editor.ws.close() for editor in editors), return_exceptions=True)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if daemon.stdout is not None:
            daemon.stdout.close()

    lat_ms = [ns / 1e6 for ns in results.latencies_ns]
    p50, p90, p99 = (percentile(lat_ms, q) for q in (0.50, 0.90, 0.99))
    cpu_share = 100.0 * cpu_daemon / wall
    per_conn_kib = (rss_idle - rss_none) / len(editors) / 1024
    print()
    print(
        f"syncd fan-out: {args.editors} editors, {args.projects} projects, {args.rate:g} edits/s,"
        f" {args.duration:g} s measured{' (pinned)' if args.pin else ''}"
    )
    print()
    print(row("measure", "value", "target", None).replace("|        |", "| result |"))
    print(f"|{'-' * 36}|{'-' * 16}|{'-' * 12}|{'-' * 8}|")
    print(row("edits sent", f"{sent}"))
    print(row("edits/s sent", f"{sent / wall:.0f}"))
    print(row("deliveries to other editors", f"{results.deliveries}"))
    print(row("deliveries missing", f"{max(0, expected - results.deliveries)}"))
    print(row("delivered changes/s", f"{results.deliveries / wall:.0f}"))
    print(row("latency p50", f"{p50:.2f} ms", f"≤ {TARGETS['p50']} ms", p50 <= TARGETS["p50"]))
    print(row("latency p90", f"{p90:.2f} ms"))
    print(row("latency p99", f"{p99:.2f} ms", f"≤ {TARGETS['p99']} ms", p99 <= TARGETS["p99"]))
    print(row("latency max", f"{max(lat_ms, default=float('nan')):.2f} ms"))
    print(
        row("daemon CPU (share of one core)", f"{cpu_share:.1f} %", f"< {TARGETS['cpu']:g} %", cpu_share < 15)
    )
    print(row("load generator CPU (one core)", f"{100.0 * cpu_bench / wall:.1f} %"))
    print(row("daemon RSS, no editors", f"{rss_none / 2**20:.1f} MiB"))
    print(row(f"daemon RSS, {len(editors)} idle editors", f"{rss_idle / 2**20:.1f} MiB"))
    print(
        row(
            "RSS per idle connection",
            f"{per_conn_kib:.1f} KiB",
            f"≤ {TARGETS['rss']:g} KB",
            per_conn_kib * 1.024 <= TARGETS["rss"],
        )
    )
    print(row("daemon RSS after the load", f"{rss_loaded / 2**20:.1f} MiB"))
    if results.errors:
        print(f"\n{len(results.errors)} error frames, first: {results.errors[0]}")
    if args.keep:
        print(f"\nstate and log kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    """Parse the flags and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editors", type=int, default=200, help="editor connections (default 200)")
    parser.add_argument("--projects", type=int, default=20, help="projects they spread over (default 20)")
    parser.add_argument("--rate", type=float, default=500.0, help="edits per second, in total (default 500)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before reading the RSS")
    parser.add_argument("--pin", action="store_true", help="daemon on CPU 0, load generator on CPU 1")
    parser.add_argument("--log-level", default="WARNING", help="the daemon's log level (default WARNING)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory and the daemon log")
    args = parser.parse_args()
    if args.editors < 2 * args.projects:
        parser.error("each project needs at least two editors (one sends, the others receive)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
