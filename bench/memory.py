"""What one project can cost ``syncd run``: a never-reading editor, large edits, a crowd joining.

Three short scenarios, each against its own daemon (``python -m syncd run`` in the embedded local
mode, a fresh state directory outside the repository, default settings):

* ``slow``: a project of about 4.5 MB (45 scenes with 100,000-character bodies), one editor that
  says hello and then reads nothing (its socket's receive buffer set to 64 KiB, as on a slow link),
  and 3 editors sending R patches per second each, each setting a scene's heading to the send time
  and its body to 20,000 characters. Measured: the snapshots queued for the slow editor (its "is
  not reading" log lines), the daemon's CPU, the latency from send to arrival at the *other*
  reading editors (p50/p99), and the daemon's RSS growth.
* ``history``: 2 editors sending scene bodies of 100,000 emoji (400 kB of UTF-8 each) as fast as
  the daemon acknowledges them (4 unacknowledged at most), for D seconds. Measured: the daemon's RSS
  growth (its peak, sampled every 0.1 s).
* ``presence``: N editors joining one project (25 at a time) and reading everything: the ``presence``
  bytes they receive in total; then N editors joining without reading (64 KiB receive buffers): the
  daemon's RSS growth, and the kernel's TCP buffer memory growth (what the daemon wrote that nobody
  read; machine-wide, from ``/proc/net/sockstat``).

The load generator shares the machine with the daemon. Run from the repository root::

    .venv/bin/python bench/memory.py                       # all three, default sizes (about a minute)
    .venv/bin/python bench/memory.py --only slow --rate 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import percentile
from fanout import PAGE_BYTES, cpu_seconds, create_projects, rss_bytes, start_daemon
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SCENES = 45
BODY_CHARS = 100_000
MiB = 2**20
SLOW_RCVBUF = 64 * 1024
"""The receive buffer of an editor that reads nothing."""


# ---- the daemon -------------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A running daemon, its editor URL, its log and its one project."""

    proc: subprocess.Popen[str]
    url: str
    log: Path
    project_id: str

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


@contextlib.asynccontextmanager
async def daemon(keep: bool) -> AsyncIterator[Daemon]:
    """Start a daemon with one project; stop it and remove its state afterwards."""
    work = Path(tempfile.mkdtemp(prefix="syncd-memory-"))
    state_dir = work / "state"
    state_dir.mkdir()
    (project_id,) = create_projects(state_dir, 1)
    proc, url = start_daemon(state_dir, work / "syncd.log", {"SYNCD_LOG__LEVEL": "INFO"})
    try:
        await asyncio.sleep(1.0)  # let it finish starting before its baseline RSS is read
        yield Daemon(proc, url, work / "syncd.log", project_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        if keep:
            print(f"state and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.asynccontextmanager
async def peak_rss(d: Daemon) -> AsyncIterator[list[int]]:
    """Sample the daemon's RSS every 0.1 s while inside; the list's one item is the peak so far."""
    peak = [d.rss()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], d.rss())
            await asyncio.sleep(0.1)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()
        peak[0] = max(peak[0], d.rss())


def tcp_memory() -> int:
    """The bytes the kernel holds in TCP buffers, machine-wide (``/proc/net/sockstat``, in pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * PAGE_BYTES
    return 0


# ---- editors ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class Editor:
    """One editor connection, its mutation counter and what it read."""

    ws: ClientConnection
    client_id: str
    next_mid: int = 1
    welcome: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)

    async def send(self, frame: dict[str, Any]) -> int:
        """Send a mutation with the next mid; return the mid."""
        mid = frame["mid"] = self.next_mid
        self.next_mid += 1
        await self.ws.send(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        return mid


async def join(url: str, project_id: str, *, read: bool = True) -> Editor:
    """Connect and say hello; with ``read``, read up to the snapshot, else read nothing at all.

    An editor that does not read gets a small receive buffer, as a slow link has: left to grow, the
    kernel's buffer on the loopback takes tens of MB before the daemon notices anything.
    """
    sock = None
    if not read:
        address = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address.hostname, address.port))
    ws = await connect(
        url, sock=sock, compression=None, max_size=None, open_timeout=60, max_queue=None if read else 1
    )
    editor = Editor(ws, str(uuid.uuid4()))
    hello = {"type": "hello", "protocol": 1, "project_id": project_id, "client_id": editor.client_id}
    await ws.send(json.dumps({**hello, "token": None, "resume": None}))
    while read and not editor.snapshot:
        frame = json.loads(await ws.recv())
        if frame["type"] == "welcome":
            editor.welcome = frame
        elif frame["type"] == "snapshot":
            editor.snapshot = frame
    return editor


async def in_batches(count: int, size: int, make: Callable[[], Awaitable[Editor]]) -> list[Editor]:
    """Open ``count`` editors, ``size`` at a time."""
    editors: list[Editor] = []
    for start in range(0, count, size):
        editors += await asyncio.gather(*(make() for _ in range(min(size, count - start))))
    return editors


async def close_all(editors: list[Editor]) -> None:
    """Close every connection without waiting long for the unread ones."""
    for editor in editors:
        editor.ws.transport.abort()
    await asyncio.gather(*(e.ws.wait_closed() for e in editors), return_exceptions=True)


class AckedSender:
    """Sends an editor's mutations with at most ``window`` of them unacknowledged; reads the answers."""

    def __init__(self, editor: Editor, window: int) -> None:
        self._editor = editor
        self._window = window
        self._room = asyncio.Semaphore(window)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self._editor.ws:
                if json.loads(message)["type"] in ("ack", "error"):
                    self._room.release()

    async def send(self, frame: dict[str, Any]) -> int:
        """Send once fewer than ``window`` mutations wait for their answer."""
        await self._room.acquire()
        return await self._editor.send(frame)

    async def drain(self) -> None:
        """Wait for every answer, then stop reading."""
        for _ in range(self._window):
            await self._room.acquire()
        self._reader.cancel()


# ---- scenarios --------------------------------------------------------------------------------------


async def slow(args: argparse.Namespace) -> None:
    """A never-reading editor on a 4.5 MB project while 3 editors edit."""
    async with daemon(args.keep) as d:
        builder = await join(d.url, d.project_id)
        sender = AckedSender(builder, 4)
        scene_ids = [str(uuid.uuid4()) for _ in range(SCENES)]
        for index, scene_id in enumerate(scene_ids):
            row = {"id": scene_id, "scene_index": index, "heading": "", "body": "x" * BODY_CHARS}
            await sender.send({"type": "insert", "table": "scenes", "row": row})
        await sender.drain()
        await close_all([builder])
        rss_before = d.rss()
        stuck = await join(d.url, d.project_id, read=False)
        editors = [await join(d.url, d.project_id) for _ in range(3)]
        latencies: list[float] = []
        measuring = asyncio.Event()

        async def read(editor: Editor) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in editor.ws:
                    now = time.monotonic_ns()
                    frame = json.loads(message)
                    if frame["type"] == "change" and frame["client_id"] != editor.client_id:
                        heading = frame.get("set", {}).get("heading", "")
                        if heading.isdigit() and measuring.is_set():
                            latencies.append((now - int(heading)) / 1e6)

        async def edit(editor: Editor) -> None:
            start = time.monotonic()
            for n in range(int(args.rate * args.duration)):
                await asyncio.sleep(max(0.0, start + n / args.rate - time.monotonic()))
                scene = random.choice(scene_ids)
                values = {"heading": str(time.monotonic_ns()), "body": f"{n} " + "y" * args.edit_bytes}
                await editor.send({"type": "patch", "table": "scenes", "id": scene, "set": values})

        readers = [asyncio.create_task(read(e)) for e in editors]
        async with peak_rss(d) as peak:
            measuring.set()
            cpu, wall = d.cpu(), time.monotonic()
            await asyncio.gather(*(edit(e) for e in editors))
            cpu, wall = d.cpu() - cpu, time.monotonic() - wall
            await asyncio.sleep(2.0)  # the last deliveries
        # Each backlog dropped is a snapshot queued in its place (the reading editors drop none).
        resends = d.log.read_text(errors="replace").count("is not reading")
        expected = 2 * 3 * int(args.rate * args.duration)
        for task in readers:
            task.cancel()
        await close_all([*editors, stuck])
    size = SCENES * BODY_CHARS / 1e6
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"\nslow: a never-reading editor, a {size:.1f} MB project,"
        f" 3 editors x {args.rate:g} edits/s, {args.duration:g} s"
    )
    print(f"  snapshots queued for the never-reading editor: {resends}")
    print(f"  daemon CPU: {100 * cpu / wall:.0f} % of one core")
    print(f"  other editors' change latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"  deliveries to the other editors: {len(latencies)} of {expected}")
    print(f"  daemon RSS growth: {(peak[0] - rss_before) / MiB:.0f} MiB (peak)")


async def history(args: argparse.Namespace) -> None:
    """2 editors sending 400 kB emoji bodies as fast as they are acknowledged."""
    async with daemon(args.keep) as d:
        editors = [await join(d.url, d.project_id) for _ in range(2)]
        scene = str(uuid.uuid4())
        setup = AckedSender(editors[0], 1)
        await setup.send({"type": "insert", "table": "scenes", "row": {"id": scene, "scene_index": 0}})
        await setup.drain()
        sent = [0]

        async def edit(editor: Editor, emoji: str) -> None:
            sender = AckedSender(editor, 4)
            end = time.monotonic() + args.duration
            n = 0
            while time.monotonic() < end:
                n += 1
                body = chr(ord(emoji) + n % 64) * BODY_CHARS
                await sender.send({"type": "patch", "table": "scenes", "id": scene, "set": {"body": body}})
                sent[0] += 1
            await sender.drain()

        rss_before = d.rss()
        async with peak_rss(d) as peak:
            await asyncio.gather(edit(editors[0], "\U0001f600"), edit(editors[1], "\U0001f680"))
        await close_all(editors)
    print(f"\nhistory: 2 editors sending {BODY_CHARS:,}-emoji bodies for {args.duration:g} s")
    print(f"  edits sent: {sent[0]} ({sent[0] * BODY_CHARS * 4 / MiB:.0f} MiB of UTF-8)")
    print(f"  daemon RSS growth: {(peak[0] - rss_before) / MiB:.0f} MiB (peak)")


async def presence(args: argparse.Namespace) -> None:
    """N editors joining one project, reading and then not reading."""
    async with daemon(args.keep) as d:
        received = {"frames": 0, "bytes": 0}
        readers: list[asyncio.Task[None]] = []

        async def read(editor: Editor) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in editor.ws:
                    if '"type":"presence"' in message[:20]:
                        received["frames"] += 1
                        received["bytes"] += len(message)

        async def reading() -> Editor:
            editor = await join(d.url, d.project_id)
            readers.append(asyncio.create_task(read(editor)))
            return editor

        start = time.monotonic()
        crowd = await in_batches(args.editors, 25, reading)
        took = time.monotonic() - start
        await asyncio.sleep(1.5)  # the last coalesced presence
        for task in readers:
            task.cancel()
        await close_all(crowd)
    async with daemon(args.keep) as d:
        rss_before, tcp_before = d.rss(), tcp_memory()
        async with peak_rss(d) as peak:
            silent = await in_batches(args.editors, 25, lambda: join(d.url, d.project_id, read=False))
            await asyncio.sleep(2.0)
            tcp_growth = (tcp_memory() - tcp_before) / MiB
        await close_all(silent)
    print(f"\npresence: {args.editors} editors joining one project ({took:.1f} s to join)")
    print(
        f"  presence frames received while reading: {received['frames']}, {received['bytes'] / MiB:.1f} MiB"
    )
    growth = (peak[0] - rss_before) / MiB
    print(f"  daemon RSS growth with {args.editors} editors that read nothing: {growth:.0f} MiB (peak)")
    print(f"  TCP buffer memory growth meanwhile (kernel, machine-wide): {tcp_growth:.0f} MiB")


async def run(args: argparse.Namespace) -> int:
    scenarios = {"slow": slow, "history": history, "presence": presence}
    for name in args.only or list(scenarios):
        await scenarios[name](args)
    return 0


def main() -> int:
    """Parse the flags and run the scenarios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", choices=["slow", "history", "presence"], help="run only these"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="slow: edits/s of each of 3 editors (100)")
    parser.add_argument(
        "--edit-bytes", type=int, default=20_000, help="slow: body characters per edit (20,000)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="slow, history: seconds of load (10)")
    parser.add_argument("--editors", type=int, default=300, help="presence: editors joining (300)")
    parser.add_argument("--keep", action="store_true", help="keep the state directories and daemon logs")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
