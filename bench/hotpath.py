"""CPU per edit of the daemon's own hot path, in one process, without sockets or a load generator.

The peers harness (``../shared/bench/peers``) measures the whole daemon beside other servers, but its
CPU figures move by a few points of a core from run to run on a shared machine, more than one change
to the hot path is worth. This bench runs the daemon's `Supervisor` in this process on uvloop (the
embedded store, the outbox on disk with its fsync, as ``syncd run`` does), opens E editors on P
projects whose transports only count what is written to them, and feeds one editor's ``patch`` at a
time through ``parse_frame`` and ``ProjectHost.receive``, the gateway's path for a received frame.
The next edit goes once the previous one's ack is written, so each group commit holds one edit, as
at 500 edits/s in the peers harness before the outbox had a commit window. The window is off here
(``daemon.commit_window = 0``): each edit comes from another editor than the last, so the window would
hold every commit for its 5 ms and the figures would measure the idle time between edits (caches gone
cold) rather than the path. It prints CPU per edit (``time.thread_time`` /
``time.process_time``):

* the event loop's thread (everything the loop runs for the edit: parse, engine, journal append,
  fan-out, the commit's completion, the ack; plus this script's own steps: building the frame and
  waiting for its ack);
* the synchronous part alone, ``parse_frame`` then ``ProjectHost.receive``, and of it ``parse_frame``;
* the whole process, the journal thread's commit and fsync included.

``--trial-raw-journal`` sizes one alternative to the outbox's SQLite: each commit becomes one
``pwrite`` of the group's rows to a preallocated file and one ``fdatasync``, still on the journal
thread. It is a measurement, not a journal: nothing reads that file back, so it keeps no promise.

Run from the repository root (``--rounds`` repeats the measurement and prints the medians)::

    .venv/bin/python bench/hotpath.py
    .venv/bin/python bench/hotpath.py --edits 10000 --rounds 5
    .venv/bin/python bench/hotpath.py --rounds 3 --trial-raw-journal
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from syncd.adapters import outbox
from syncd.adapters.gateway import EditorConnection
from syncd.adapters.local import LocalBackend
from syncd.config import SyncdSettings
from syncd.host import ProjectHost
from syncd.inbound import HelloFrame, MutationFrame, parse_frame
from syncd.supervisor import Supervisor


class CountingTransport:
    """Stands for an editor's socket: counts frames, and wakes whoever waits for an ack."""

    def __init__(self) -> None:
        self.frames = 0
        self.acked = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.frames += 1
        if b'"type":"ack"' in data[:24]:
            self.acked.set()

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        """Nothing to close."""


class CountingSocket:
    """The aiohttp WebSocket's two calls the connection's writer makes, on a counting transport."""

    closed = False

    def __init__(self, transport: CountingTransport) -> None:
        self.transport = transport

    async def send_frame(self, data: bytes, kind: object) -> None:
        self.transport.write(data)

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        """Nothing to close."""


async def open_editors(host: ProjectHost, projects: list[str], count: int) -> list[EditorConnection]:
    """``count`` editors, editor i on project i mod P, through the host as the gateway opens them."""
    editors = []
    for i in range(count):
        transport = CountingTransport()
        conn = EditorConnection(f"bench{i}", CountingSocket(transport), transport, 1000, 1 << 20)  # type: ignore[arg-type]
        conn.project_id = projects[i % len(projects)]
        conn.client_id = str(uuid.uuid4())
        await host.open(
            conn,
            HelloFrame(type="hello", protocol=1, project_id=conn.project_id, client_id=conn.client_id),
            None,
        )
        editors.append(conn)
    return editors


async def measure(
    host: ProjectHost,
    settings: SyncdSettings,
    editors: list[EditorConnection],
    edits: int,
    mids: dict[str, int],
) -> dict[str, float]:
    """Send ``edits`` patches one at a time; CPU per edit, in µs.

    ``mids`` holds each editor's last mid, across rounds: a mid sent again would be acknowledged as a
    duplicate without being applied or journaled.
    """
    rng = random.Random(len(mids) + sum(mids.values()))
    g = settings.gateway
    sync = parse = 0.0
    loop0, process0 = time.thread_time(), time.process_time()
    for k in range(edits):
        conn = rng.choice(editors)
        mids[conn.conn_id] = mids.get(conn.conn_id, 0) + 1
        data = json.dumps(
            {
                "type": "patch",
                "mid": mids[conn.conn_id],
                "table": "projects",
                "id": conn.project_id,
                "set": {"settings": {"k": k, "t": time.monotonic_ns()}},
            }
        ).encode()
        transport: Any = conn.transport
        transport.acked.clear()
        t0 = time.thread_time()
        frame = parse_frame(data, max_bytes=g.max_frame_bytes, max_depth=g.max_json_depth)
        t1 = time.thread_time()
        assert isinstance(frame, MutationFrame)
        host.receive(conn, frame)
        t2 = time.thread_time()
        parse += t1 - t0
        sync += t2 - t0
        await transport.acked.wait()
    loop1, process1 = time.thread_time(), time.process_time()
    per = 1e6 / edits
    return {
        "loop": (loop1 - loop0) * per,
        "sync": sync * per,
        "parse": parse * per,
        "process": (process1 - process0) * per,
    }


def raw_journal(path: Path) -> None:
    """Replace the outbox's commit by one write and one fdatasync of a preallocated file (a trial)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.posix_fallocate(fd, 0, 256 * 1024 * 1024)  # no size change per commit: no metadata to flush
    os.fsync(fd)
    end = 0

    def write(self: outbox.Outbox, ops: list[Any]) -> int:
        nonlocal end
        data = "".join("\t".join(map(str, op.row)) + "\n" for op in ops if isinstance(op, outbox._Append))
        end += os.pwrite(fd, data.encode(), end)
        os.fdatasync(fd)
        return 0

    outbox.Outbox._write = write  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="syncd-hotpath-"))
    if args.trial_raw_journal:
        raw_journal(state / "raw-journal")
    async with LocalBackend(state / "store.db") as store:
        projects = [str((await store.create_project(f"Bench {i}"))["id"]) for i in range(args.projects)]
    settings = SyncdSettings(
        daemon={"state_dir": state, "commit_window": 0}, gateway={"host": "127.0.0.1", "port": 0}
    )
    supervisor = Supervisor(settings)
    serving = asyncio.create_task(supervisor.serve())
    await supervisor.ready.wait()
    try:
        editors = await open_editors(supervisor.host, projects, args.editors)
        await asyncio.sleep(1.0)  # the welcomes and snapshots go out
        gc.collect()
        gc.freeze()  # as `syncd run` does at start
        mids = dict.fromkeys((e.conn_id for e in editors), 0)
        await measure(supervisor.host, settings, editors, max(100, args.edits // 5), mids)  # warm-up
        rounds = [
            await measure(supervisor.host, settings, editors, args.edits, mids) for _ in range(args.rounds)
        ]
        commits = supervisor.host.journal.commits  # type: ignore[attr-defined]
    finally:
        supervisor.request_stop()
        await serving
    journal = "a raw file (trial)" if args.trial_raw_journal else "the outbox"
    print(f"{args.editors} editors, {args.projects} projects, {args.rounds} round(s) of {args.edits} edits")
    print(f"journal: {journal}")
    print(f"journal commits: {commits} for {sum(mids.values())} edits")
    print("µs of CPU per edit (median of the rounds):")
    for key, what in (
        ("loop", "event loop's thread"),
        ("sync", "  of it parse_frame + ProjectHost.receive"),
        ("parse", "  of it parse_frame"),
        ("process", "whole process (journal thread included)"),
    ):
        values = [r[key] for r in rounds]
        spread = f"  [{min(values):.0f} to {max(values):.0f}]" if len(values) > 1 else ""
        print(f"  {what:42s} {statistics.median(values):6.0f}{spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--edits", type=int, default=5000, help="edits per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the medians are printed (default 1)")
    parser.add_argument("--editors", type=int, default=200)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--trial-raw-journal", action="store_true", help="size a journal without SQLite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
