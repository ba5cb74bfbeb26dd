"""Soak of ``syncd run``: many cycles of a modest churning workload, watched for leaks.

Starts its own daemon (``python -m syncd run`` on a free port, in the embedded local mode, with a
fresh state directory outside the repository so that no ``config/syncd.toml`` applies), reads the HTTP
API's service key with ``syncd service-key --state-dir DIR`` and then, for ``--duration`` seconds, runs
at once, at a rate that keeps the daemon well under a core:

* project churn: every ``--churn-interval`` seconds a new project is created over HTTP, 1 to 3 editors
  (bare WebSockets speaking docs/protocol.md) open it, insert, patch, reorder and delete scenes and
  clips, and leave (cleanly, or by dropping the TCP connection without a close frame); the project's
  live view is then read over HTTP and checked against what the editors did, its scenes are synced
  and an export is requested and rendered over HTTP, and half of the projects are deleted (now and
  then while an editor is still on it, which must close it with 4404);
* editor churn on ``--projects`` long-lived projects (``--loops`` editor loops each): editors that
  connect, edit a few times and leave, cleanly or by dropping the connection; some drop with an edit
  in flight and reconnect with ``resume``, resending it (its ack must come); a few go silent (no
  keepalive pings of their own, reading stopped so that no pong answers the daemon's ping) and must
  have been dropped by the daemon 40 s later; now and then a frame the daemon must refuse, or a
  hello for a project that does not exist;
* HTTP calls every ``--http-interval`` seconds: list, get and patch projects, sync scenes, add, send
  again, update, reorder and delete clips, voices, exports, audio files, a small upload and its
  removal, and a few bad requests (unknown ids, bad JSON, unknown fields, a wrong key) whose refusal
  is checked.

Every mutation an editor sends must be answered (``ack``, or ``error`` with its mid for the refused
probes) within 15 s; edits still unanswered are lost. Every ``--sample`` seconds one line is printed:
the daemon's RSS, open file descriptors, threads and CPU (share of one core over the interval), the
size of every file in the state directory (store.db, outbox.db and their -wal files; the rest
summed), the gauges of ``/metrics`` (editors connected, with the editors this process holds beside
it, projects open, pending edits, outbox depth) and the counts so far. After the run the editors are
gone and the daemon should close every project within ``--idle-timeout`` (its
``daemon.project_idle_timeout``, passed to it) once saved: the soak waits for that and checks that
editors, projects, pending edits and the outbox all come back to 0, and prints the fds, threads and
RSS beside their values before the load. The summary gives the first and last sample after the
warm-up, the growth per hour (end points and a least-squares fit) of RSS, fds, threads and each
file, and the daemon log's warnings, errors and tracebacks, counted (ids and numbers masked). Exit
status 1 when an edit was lost or the daemon died, else 0.

To find what grows: ``--parts`` runs only some parts of the load, ``--setting SECTION.KEY=VALUE``
passes the daemon a setting, and ``--linger`` keeps sampling the idle daemon after the load. Each
open project keeps its last changes for resuming editors (``engine.history_size``, 10,000, and
``engine.history_bytes``, 4 MiB as estimated), so the RSS rises until those histories are full;
``--setting engine.history_size=200`` takes most of that out.

Run from the repository root::

    .venv/bin/python bench/soak.py --duration 1200            # 20 minutes, a sample every 30 s
    .venv/bin/python bench/soak.py --duration 120 --sample 10 # a quick check that it works
    .venv/bin/python bench/soak.py --duration 600 --parts editors --linger 120  # one part alone
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
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from fanout import clean_env, cpu_seconds, rss_bytes, start_daemon
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

MiB = 2**20
ACK_TIMEOUT = 15.0
"""Seconds an edit may wait for its answer before it counts as lost."""
JOIN_TIMEOUT = 15.0
SILENT_HOLD = 40.0
"""Seconds a silent editor stays: the daemon pings after 20 s of silence and drops it 10 s later."""
GAUGES = ("syncd_editors_connected", "syncd_projects_open", "syncd_pending_edits", "syncd_outbox_depth")
TABLE_FILES = ("store.db", "store.db-wal", "outbox.db", "outbox.db-wal")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
JSON = {"Content-Type": "application/json"}
WRONG_KEY = {"Authorization": "Bearer not-the-key"}
PNG = bytes.fromhex("89504e470d0a1a0a") + b"soak" * 64


def frame_json(frame: dict[str, Any]) -> str:
    """A frame as compact JSON."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def new_id() -> str:
    """A fresh lower-case UUID."""
    return str(uuid.uuid4())


# ---- what happened --------------------------------------------------------------------------------


@dataclass
class Stats:
    """The soak's counts; ``errors`` by kind, with one example message each."""

    cycles: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    """Mutations sent (a resend of the same mid is not counted again)."""
    acked: int = 0
    refused: int = 0
    """Mutations answered with an error naming their mid (each one a probe the daemon must refuse)."""
    http_calls: int = 0
    probes: int = 0
    """Requests and frames sent to be refused, whose refusal came as expected."""
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def error(self, kind: str, detail: str = "") -> None:
        """Count an error of this kind."""
        self.errors[kind] += 1
        self.examples.setdefault(kind, detail[:300])


@dataclass
class Sample:
    """One reading of the daemon."""

    t: float
    rss: int
    fds: int
    threads: int
    cpu: float
    """Share of one core since the previous sample, in %."""
    files: dict[str, int]
    metrics: dict[str, float]
    ours: int
    """Editor connections this process holds open."""
    cycles: int
    sessions: int
    http: int
    sent: int
    acked: int
    errors: int


# ---- an editor --------------------------------------------------------------------------------------


class Editor:
    """One editor of one project: its client id and mids survive reconnects, as protocol §16 says.

    Args:
        soak: the soak it reports to.
        project_id: the project it opens.
    """

    def __init__(self, soak: Soak, project_id: str) -> None:
        self.soak = soak
        self.project_id = project_id
        self.client_id = new_id()
        self.next_mid = 1
        self.ws: ClientConnection | None = None
        self.epoch: str | None = None
        self.seq = 0
        self.welcome_seq = -1
        self.joined = asyncio.Event()
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.unanswered: dict[int, dict[str, Any]] = {}
        self.probe_mids: set[int] = set()
        self.scenes: set[str] = set()
        self.clips: set[str] = set()
        self.ending = False
        """This side is closing the connection: any close code is expected."""
        self.expect_gone = False
        """The project is being deleted: error not_found and close 4404 are expected."""
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, *, resume: bool = False, keepalive: bool = True) -> None:
        """Open a connection, say hello (resuming from the last applied seq) and wait until joined."""
        ws = await connect(
            self.soak.url,
            compression=None,
            max_size=None,
            open_timeout=30,
            ping_interval=20 if keepalive else None,
        )
        self.ws, self.ending, self.close_code = ws, False, None
        self.joined = asyncio.Event()
        self.welcome_seq = -1
        resuming = resume and self.epoch is not None
        hello = {
            "type": "hello",
            "protocol": 1,
            "project_id": self.project_id,
            "client_id": self.client_id,
            "token": None,
            "resume": {"epoch": self.epoch, "seq": self.seq} if resuming else None,
        }
        self.soak.live.add(self)
        self._reader = asyncio.create_task(self._read(ws, resuming))
        await ws.send(frame_json(hello))
        async with asyncio.timeout(JOIN_TIMEOUT):
            await self.joined.wait()
        if self.close_code is not None:
            raise ConnectionError(f"closed with {self.close_code} before joining")
        # Protocol §16: once joined, every unanswered mutation goes again, same mid, in mid order.
        for mid in sorted(self.unanswered):
            await ws.send(frame_json(self.unanswered[mid]))

    async def _read(self, ws: ClientConnection, resuming: bool) -> None:
        try:
            async for message in ws:
                self._take(json.loads(message), resuming)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code if ws.close_code is not None else 1006
            self.soak.live.discard(self)
            self.joined.set()
            expected = self.ending or (self.expect_gone and self.close_code == 4404)
            if not expected:
                self.soak.stats.error(f"editor closed by syncd with {self.close_code}", ws.close_reason or "")

    def _take(self, frame: dict[str, Any], resuming: bool) -> None:
        kind = frame["type"]
        if kind == "welcome":
            self.welcome_seq = frame["seq"]
            if resuming and frame["epoch"] == self.epoch and self.seq == frame["seq"]:
                self.joined.set()
            self.epoch = frame["epoch"]
        elif kind == "snapshot":
            self.epoch, self.seq = frame["epoch"], frame["seq"]
            self.scenes = {row["id"] for row in frame["scenes"]}
            self.clips = {row["id"] for row in frame["clips"]}
            self.joined.set()
        elif kind == "change":
            seq = frame["seq"]
            if seq <= self.seq:
                return
            if seq != self.seq + 1:
                self.soak.stats.error("gap in the change stream", f"after {self.seq}: {seq}")
            self.seq = seq
            rows = {"scenes": self.scenes, "clips": self.clips}.get(frame["table"])
            if rows is not None and frame["op"] == "insert":
                rows.add(frame["id"])
            elif rows is not None and frame["op"] == "delete":
                rows.discard(frame["id"])
            if not self.joined.is_set() and seq >= self.welcome_seq >= 0:
                self.joined.set()
        elif kind in ("ack", "error") and frame.get("mid") is not None:
            self._answer(frame)
        elif kind == "error" and not (self.expect_gone and frame["code"] == "not_found"):
            self.soak.stats.error(f"error frame {frame['code']} (mid null)", frame["message"])

    def _answer(self, frame: dict[str, Any]) -> None:
        mid = frame["mid"]
        self.unanswered.pop(mid, None)
        future = self.waiting.pop(mid, None)
        if future is None or future.done():
            return  # an answer to a resend that was answered already
        future.set_result(frame)
        stats = self.soak.stats
        if frame["type"] == "ack":
            stats.acked += 1
            if mid in self.probe_mids:
                stats.error("a frame that must be refused was acknowledged", frame_json(frame))
        else:
            stats.refused += 1
            if mid in self.probe_mids:
                stats.probes += 1
            else:
                stats.error(f"edit refused: {frame['code']}", frame["message"])

    async def send(self, frame: dict[str, Any], *, probe: bool = False) -> asyncio.Future[dict[str, Any]]:
        """Send a mutation with the next mid; return the future of its answer."""
        assert self.ws is not None
        mid = frame["mid"] = self.next_mid
        self.next_mid += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[mid] = future
        self.unanswered[mid] = frame
        if probe:
            self.probe_mids.add(mid)
        self.soak.stats.sent += 1
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(frame_json(frame))
        return future

    async def answer(self, future: asyncio.Future[dict[str, Any]]) -> dict[str, Any] | None:
        """Wait for a mutation's answer; None (and one lost edit counted) when none comes in time."""
        try:
            async with asyncio.timeout(ACK_TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            self.soak.stats.error("edit not answered within 15 s", f"project {self.project_id}")
            return None

    async def edit(self, frame: dict[str, Any], *, probe: bool = False) -> dict[str, Any] | None:
        """Send a mutation and wait for its answer."""
        return await self.answer(await self.send(frame, probe=probe))

    # -- the edits ------------------------------------------------------------------------------------

    async def insert_scene(self, index: int) -> str:
        scene = new_id()
        row = {"id": scene, "scene_index": index, "heading": f"Scene {index}", "body": "b" * 300}
        await self.edit({"type": "insert", "table": "scenes", "row": row})
        return scene

    async def insert_clip(self, scene: str | None, index: int) -> str:
        clip = new_id()
        row = {"id": clip, "scene_id": scene, "prompt": "a lighthouse at dusk", "order_index": index}
        await self.edit({"type": "insert", "table": "clips", "row": row})
        return clip

    async def patch(self, table: str, row_id: str, values: dict[str, Any]) -> None:
        await self.edit({"type": "patch", "table": table, "id": row_id, "set": values})

    async def delete(self, table: str, row_id: str) -> None:
        await self.edit({"type": "delete", "table": table, "id": row_id})

    async def reorder(self, table: str, ids: list[str]) -> None:
        await self.edit({"type": "reorder", "table": table, "ids": ids})

    async def probe(self) -> None:
        """A frame the daemon must refuse with its mid, the connection staying open."""
        frame = random.choice(
            [
                {"type": "patch", "table": "scenes", "id": new_id(), "set": {"heading": "x"}},  # not_found
                {"type": "patch", "table": "projects", "id": self.project_id, "set": {"colour": "red"}},
                {"type": "insert", "table": "voices", "row": {"id": new_id()}},
            ]
        )
        await self.edit(frame, probe=True)

    # -- leaving --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close cleanly (1000)."""
        self.ending = True
        if self.ws is not None:
            await self.ws.close()
        await self.stopped()

    async def drop(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.ending = True
        if self.ws is not None:
            self.ws.transport.abort()
        await self.stopped()

    async def stopped(self) -> None:
        """Wait for the reader to finish."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# ---- the soak ---------------------------------------------------------------------------------------


class Soak:
    """The daemon, the workload and the samples."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="syncd-soak-"))
        self.state_dir = self.work / "state"
        self.state_dir.mkdir()
        self.log_path = self.work / "syncd.log"
        self.stats = Stats()
        self.live: set[Editor] = set()
        self.stop = asyncio.Event()
        self.samples: list[Sample] = []
        self.daemon: subprocess.Popen[str] | None = None
        self.url = ""
        self.base = ""
        self.key = ""
        self.session: aiohttp.ClientSession | None = None
        self.long_lived: list[str] = []
        self.http_project = ""
        self.orphans: dict[str, list[tuple[str, str]]] = {}
        """Rows left in a long-lived project by an editor that dropped; the next editor deletes them."""
        self.started = 0.0
        self._cpu = (0.0, 0.0)
        self.died = False

    # -- the daemon -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.daemon is not None
        return self.daemon.pid

    def start(self) -> None:
        env = {
            "SYNCD_LOG__LEVEL": self.args.log_level,
            "SYNCD_DAEMON__PROJECT_IDLE_TIMEOUT": str(self.args.idle_timeout),
        }
        for setting in self.args.setting:
            name, _, value = setting.partition("=")
            section, _, key = name.partition(".")
            env[f"SYNCD_{section.upper()}__{key.upper()}"] = value
        self.daemon, self.url = start_daemon(self.state_dir, self.log_path, env)
        address = urlsplit(self.url)
        self.base = f"http://{address.netloc}"
        cmd = [sys.executable, "-m", "syncd", "service-key", "--state-dir", str(self.state_dir)]
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=clean_env({}), cwd=self.work, timeout=60, check=True
        )
        self.key = out.stdout.strip()

    def stop_daemon(self) -> int | None:
        """SIGTERM the daemon (kill it after 30 s); its exit code."""
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if self.daemon.stdout is not None:
            self.daemon.stdout.close()
        return self.daemon.returncode

    # -- HTTP -----------------------------------------------------------------------------------------

    async def http(
        self,
        name: str,
        method: str,
        path: str,
        expect: int | tuple[int, ...],
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One API call; an answer with another status than ``expect`` is an error (then None)."""
        assert self.session is not None
        wanted = (expect,) if isinstance(expect, int) else expect
        hdrs = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        kwargs: dict[str, Any] = {"headers": hdrs}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        self.stats.http_calls += 1
        try:
            async with self.session.request(method, self.base + path, **kwargs) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.error(f"http {name}: {type(exc).__name__}", str(exc))
            return None
        if status not in wanted:
            self.stats.error(f"http {name}: {status}, not {'/'.join(map(str, wanted))}", text)
            return None
        if status >= 400:
            self.stats.probes += 1
        return json.loads(text) if text else None

    async def create_project(self, title: str) -> str | None:
        pid = new_id()
        body = {"id": pid, "title": title, "settings": {"fps": 30}}
        if await self.http("create project", "POST", "/v1/projects", 201, body=body) is None:
            return None
        if random.random() < 0.2:  # the same create again: 200 and the same row
            await self.http("create project again", "POST", "/v1/projects", 200, body=body)
        return pid

    # -- the workload ---------------------------------------------------------------------------------

    async def guarded(self, name: str, work: Awaitable[None]) -> None:
        """Run one cycle; an exception is an error of the cycle, not the end of the soak."""
        try:
            await work
        except Exception as exc:
            self.stats.error(f"{name}: {type(exc).__name__}", str(exc))

    async def every(self, interval: float, name: str, cycle: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``cycle`` every ``interval`` seconds (at most 3 running at once) until stopped."""
        running: set[asyncio.Task[None]] = set()
        room = asyncio.Semaphore(3)

        async def one() -> None:
            async with room:
                await self.guarded(name, cycle())

        next_at = time.monotonic()
        while not self.stop.is_set():
            task = asyncio.create_task(one())
            running.add(task)
            task.add_done_callback(running.discard)
            next_at += interval * random.uniform(0.7, 1.3)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_at - time.monotonic())):
                    await self.stop.wait()
        await asyncio.gather(*running, return_exceptions=True)

    async def churn_cycle(self) -> None:
        """A new project, 1-3 editors on it, its view checked over HTTP; deleted half the time."""
        pid = await self.create_project(f"Churn {self.stats.cycles['churn']}")
        if pid is None:
            return
        self.stats.cycles["churn"] += 1
        editors = [Editor(self, pid) for _ in range(random.randint(1, 3))]
        try:
            await self.churn_editors(pid, editors)
        except BaseException:
            await asyncio.gather(*(e.drop() for e in editors), return_exceptions=True)
            raise

    async def churn_editors(self, pid: str, editors: list[Editor]) -> None:
        """The editors of a churn project edit and leave; then the HTTP part of the cycle."""
        await asyncio.gather(*(e.connect() for e in editors))
        kept: dict[str, set[str]] = {"scenes": set(), "clips": set()}

        async def work(editor: Editor, index: int) -> None:
            scenes = [await editor.insert_scene(10 * index + n) for n in range(random.randint(1, 3))]
            clips = [await editor.insert_clip(random.choice(scenes), 10 * index + n) for n in range(2)]
            for n in range(random.randint(2, 5)):
                await editor.patch("scenes", random.choice(scenes), {"heading": f"h{n}", "duration": n})
                await asyncio.sleep(random.uniform(0.02, 0.2))
            await editor.patch("clips", clips[0], {"prompt": "the lamp turns", "status": "generating"})
            await editor.patch("projects", pid, {"title": f"Churn {pid[:8]} by {index}"})
            if len(scenes) > 1:
                await editor.reorder("scenes", scenes[::-1])
                await editor.delete("scenes", scenes.pop())
            await editor.delete("clips", clips.pop())
            kept["scenes"].update(scenes)
            kept["clips"].update(clips)

        await asyncio.gather(*(work(e, i) for i, e in enumerate(editors)))
        if random.random() < 0.1:
            # Deleted under its editors: each gets error not_found and close 4404.
            for editor in editors:
                editor.expect_gone = True
            await self.http("delete project with editors", "DELETE", f"/v1/projects/{pid}", 200)
            for editor in editors:
                async with asyncio.timeout(10):
                    await editor.stopped()
                if editor.close_code != 4404:
                    self.stats.error(
                        "editor of a deleted project not closed with 4404", f"{editor.close_code}"
                    )
            self.stats.cycles["deleted with editors"] += 1
            return
        await asyncio.gather(*(random.choice([e.close, e.close, e.drop])() for e in editors))

        view = await self.http("get project", "GET", f"/v1/projects/{pid}", 200)
        if view is not None:
            scenes = {row["id"] for row in view["scenes"]}
            clips = {row["id"] for row in view["clips"]}
            if scenes != kept["scenes"] or clips != kept["clips"]:
                self.stats.error(
                    "live view differs from the acknowledged edits",
                    f"{pid}: scenes {len(scenes)} vs {len(kept['scenes'])}, clips {len(clips)} vs"
                    f" {len(kept['clips'])}",
                )
            first = view["scenes"][0]["id"] if view["scenes"] else None
            wanted = [{"id": first, "heading": "synced"}] if first else []
            wanted.append({"heading": "added by sync", "duration": 2.5})
            synced = await self.http(
                "sync scenes", "PUT", f"/v1/projects/{pid}/scenes", 200, body={"scenes": wanted}
            )
            if synced is not None and len(synced["scenes"]) != len(wanted):
                self.stats.error("sync scenes: wrong scene count", json.dumps(synced)[:200])
        export = await self.http(
            "create export", "POST", f"/v1/projects/{pid}/exports", 201, body={"format": "mp4"}
        )
        if export is not None:
            path = f"/v1/exports/{export['id']}"
            await self.http(
                "render export", "PATCH", path, 200, body={"status": "rendering", "progress": 0.5}
            )
            done = {"status": "done", "progress": 1, "file_url": f"https://example.invalid/{pid}.mp4"}
            await self.http("finish export", "PATCH", path, 200, body=done)
        if random.random() < 0.5:
            await self.http("delete project", "DELETE", f"/v1/projects/{pid}", 200)
            await self.http("get deleted project", "GET", f"/v1/projects/{pid}", 404)
            self.stats.cycles["deleted"] += 1

    async def editor_loop(self, pid: str) -> None:
        """Editor sessions on one long-lived project, one after the other, until stopped."""
        while not self.stop.is_set():
            await self.guarded("editor session", self.editor_session(pid))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(random.uniform(0.5, 3.0)):
                    await self.stop.wait()

    async def editor_session(self, pid: str) -> None:
        """One editor: connect, clean up what dropped editors left, edit, leave in one of four ways."""
        way = random.choices(["clean", "drop", "resume", "silent"], weights=[50, 20, 28, 2])[0]
        if random.random() < 0.03:
            await self.missing_project_hello()
        editor = Editor(self, pid)
        try:
            # A silent editor sends no keepalive pings of its own: they would keep the daemon from pinging.
            await editor.connect(keepalive=way != "silent")
            await self.edit_session(editor, pid, way)
        except BaseException:
            await editor.drop()  # a failed session leaves no connection behind
            raise

    async def edit_session(self, editor: Editor, pid: str, way: str) -> None:
        """What one editor of a long-lived project does once connected, and how it leaves."""
        self.stats.cycles["session"] += 1
        self.stats.cycles[f"session {way}"] += 1
        orphans = self.orphans.setdefault(pid, [])
        # Taken before the first await: another editor of the project may take some meanwhile.
        taken = [orphans.pop() for _ in range(min(2, len(orphans)))]
        for table, row in taken:
            await editor.delete(table, row)
        scene = await editor.insert_scene(random.randint(0, 50))
        clip = await editor.insert_clip(scene, random.randint(0, 50))
        for n in range(random.randint(2, 6)):
            if random.random() < 0.5:
                await editor.patch("scenes", scene, {"body": f"{n} " + "w" * random.randint(10, 2000)})
            else:
                await editor.patch("clips", clip, {"duration": float(n), "metadata": {"take": n}})
            await asyncio.sleep(random.uniform(0.05, 0.4))
        if random.random() < 0.2:
            await editor.patch("projects", pid, {"title": f"Long-lived {pid[:8]}", "settings": {"n": 1}})
        if random.random() < 0.1:
            await editor.probe()
        if way == "drop":
            await editor.drop()
            orphans += [("clips", clip), ("scenes", scene)]
            return
        if way == "resume":
            # Drop with an edit in flight, come back with resume, resend it: its ack must come.
            future = await editor.send(
                {"type": "patch", "table": "scenes", "id": scene, "set": {"heading": "r"}}
            )
            await editor.drop()
            await asyncio.sleep(random.uniform(0.05, 1.0))
            await editor.connect(resume=True)
            await editor.answer(future)
            await editor.patch("clips", clip, {"prompt": "after the resume"})
            self.stats.cycles["resumed"] += 1
        if way == "silent":
            await editor.delete("clips", clip)
            await editor.delete("scenes", scene)
            await self.go_silent(editor)
            return
        await editor.delete("clips", clip)
        await editor.delete("scenes", scene)
        await editor.close()

    async def go_silent(self, editor: Editor) -> None:
        """Stop reading (so no pong answers the daemon's ping) until the daemon must have dropped it.

        Protocol §1: a ping after 20 s of silence, the editor dropped 10 s later when no pong came.
        Then reading resumes: the connection must be found closed by the daemon.
        """
        assert editor.ws is not None
        editor.ending = True
        editor.ws.transport.pause_reading()
        start = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SILENT_HOLD):
                await self.stop.wait()
        held = time.monotonic() - start
        editor.ws.transport.resume_reading()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await editor.stopped()
        if editor.close_code is not None:
            self.stats.cycles["silent, dropped by syncd"] += 1
        elif held >= SILENT_HOLD:
            self.stats.error(f"silent editor still connected after {SILENT_HOLD:g} s")
        await editor.drop()

    async def missing_project_hello(self) -> None:
        """A hello for a project that does not exist: error not_found, close 4404."""
        ghost = Editor(self, new_id())
        ghost.expect_gone = True
        with contextlib.suppress(ConnectionError):
            await ghost.connect()
        await ghost.stopped()
        if ghost.close_code == 4404:
            self.stats.probes += 1
        else:
            self.stats.error("hello for a missing project not closed with 4404", f"{ghost.close_code}")

    async def http_cycle(self) -> None:
        """A round of the HTTP API on the HTTP project and one long-lived project, with bad requests."""
        self.stats.cycles["http"] += 1
        pid = self.http_project
        p = f"/v1/projects/{pid}"
        await self.http("list projects", "GET", "/v1/projects", 200)
        await self.http("get project", "GET", p, 200)
        await self.http("patch project", "PATCH", p, 200, body={"title": f"HTTP {time.time():.0f}"})
        scenes = [{"heading": f"s{n}", "body": "x" * random.randint(0, 500)} for n in range(3)]
        synced = await self.http("sync scenes", "PUT", f"{p}/scenes", 200, body={"scenes": scenes})
        scene_id = synced["scenes"][0]["id"] if synced else None
        clip = {"id": new_id(), "scene_id": scene_id, "provider": "soak", "prompt": "waves"}
        await self.http("add clip", "POST", f"{p}/clips", 201, body=clip)
        await self.http("add clip again", "POST", f"{p}/clips", 200, body=clip)
        await self.http("update clip", "PATCH", f"{p}/clips/{clip['id']}", 200, body={"status": "ready"})
        other = {"id": new_id(), "prompt": "foam"}
        await self.http("add clip", "POST", f"{p}/clips", 201, body=other)
        order = {"clip_ids": [other["id"], clip["id"]]}
        await self.http("reorder clips", "PUT", f"{p}/clips/order", 200, body=order)
        save = "?save=now" if random.random() < 0.2 else ""
        await self.http("delete clip", "DELETE", f"{p}/clips/{clip['id']}{save}", 200)
        await self.http("delete clip", "DELETE", f"{p}/clips/{other['id']}", 200)
        voice = await self.http(
            "create voice", "POST", "/v1/voices", 201, body={"name": "v", "provider": "p"}
        )
        if voice is not None:
            await self.http("update voice", "PATCH", f"/v1/voices/{voice['id']}", 200, body={"name": "w"})
            await self.http("delete voice", "DELETE", f"/v1/voices/{voice['id']}", 200)
        audio = await self.http(
            "create audio", "POST", f"{p}/audio", 201, body={"kind": "music", "duration": 3.0}
        )
        if audio is not None:
            await self.http("delete audio", "DELETE", f"/v1/audio/{audio['id']}", 200)
        if random.random() < 0.3:
            path = f"thumbnails/projects/{pid}/thumbnails/{new_id()}.png"
            headers = {"Content-Type": "image/png"}
            await self.http("upload", "PUT", f"/v1/storage/{path}", 201, raw=PNG, headers=headers)
            await self.http("public url", "GET", f"/v1/storage/public/{path}", 200)
            await self.http("remove upload", "DELETE", f"/v1/storage/{path}", 200)
        # One of the long-lived projects, while its editors edit: fields and clips no editor touches.
        lp = f"/v1/projects/{random.choice(self.long_lived)}"
        await self.http("get project", "GET", lp, 200)
        await self.http("patch project", "PATCH", lp, 200, body={"settings": {"soak": time.time()}})
        added = await self.http("add clip", "POST", f"{lp}/clips", 201, body={"provider": "soak"})
        if added is not None:
            await self.http("delete clip", "DELETE", f"{lp}/clips/{added['id']}", 200)
        for _ in range(3):
            await self.bad_request(pid)

    async def bad_request(self, pid: str) -> None:
        """A request the API must refuse, with the status it must refuse it with."""
        missing, project = new_id(), f"/v1/projects/{pid}"
        calls: list[tuple[str, str, str, int | tuple[int, ...], dict[str, Any]]] = [
            ("get missing project", "GET", f"/v1/projects/{missing}", 404, {}),
            ("patch missing project", "PATCH", f"/v1/projects/{missing}", 404, {"body": {"title": "t"}}),
            ("get project, bad id", "GET", "/v1/projects/not-a-uuid", (400, 404), {}),
            ("patch project, bad JSON", "PATCH", project, 400, {"raw": b'{"title": ', "headers": JSON}),
            ("patch project, unknown field", "PATCH", project, 400, {"body": {"colour": "red"}}),
            ("sync scenes, bad type", "PUT", f"{project}/scenes", 400, {"body": {"scenes": [{"body": 5}]}}),
            ("add clip, missing project", "POST", f"/v1/projects/{missing}/clips", 404, {"body": {}}),
            ("delete missing clip", "DELETE", f"{project}/clips/{missing}", 404, {}),
            ("patch missing export", "PATCH", f"/v1/exports/{missing}", 404, {"body": {"status": "done"}}),
            ("create project, not an object", "POST", "/v1/projects", 400, {"body": [1, 2]}),
            ("list projects, wrong key", "GET", "/v1/projects", 401, {"headers": WRONG_KEY}),
        ]
        name, method, path, expect, kwargs = random.choice(calls)
        await self.http(name, method, path, expect, **kwargs)

    # -- sampling -------------------------------------------------------------------------------------

    async def metrics(self) -> dict[str, float]:
        """The unlabelled values (and labelled ones under their full name) of ``/metrics``."""
        assert self.session is not None
        values: dict[str, float] = {}
        try:
            async with self.session.get(self.base + "/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.error("GET /metrics failed", str(exc))
            return values
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name] = float(value)
        return values

    def files(self) -> dict[str, int]:
        """The size of every file under the state directory, by its relative path."""
        sizes: dict[str, int] = {}
        for path in self.state_dir.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    sizes[str(path.relative_to(self.state_dir))] = path.stat().st_size
        return sizes

    async def sample(self) -> Sample | None:
        """Read the daemon now; None (and ``died``) if it is gone."""
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            self.died = True
            return None
        pid = self.pid
        try:
            fds, threads = fds_and_threads(pid)
            rss, cpu, now = rss_bytes(pid), cpu_seconds(pid), time.monotonic()
        except (OSError, ValueError):
            self.died = True
            return None
        # CPU is counted in clock ticks: over less than a second the share means little, so the
        # interval then runs on to the next sample.
        cpu_share = float("nan")
        if not self._cpu[1] or now - self._cpu[1] >= 1.0:
            if self._cpu[1]:
                cpu_share = 100.0 * (cpu - self._cpu[0]) / (now - self._cpu[1])
            self._cpu = (cpu, now)
        stats = self.stats
        return Sample(
            t=now - self.started,
            rss=rss,
            fds=fds,
            threads=threads,
            cpu=cpu_share,
            files=self.files(),
            metrics=await self.metrics(),
            ours=len(self.live),
            cycles=stats.cycles["churn"],
            sessions=stats.cycles["session"],
            http=stats.cycles["http"],
            sent=stats.sent,
            acked=stats.acked,
            errors=sum(stats.errors.values()),
        )

    async def sampler(self) -> None:
        """A sample every ``--sample`` seconds, printed as it is taken."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.args.sample):
                    await self.stop.wait()
            if self.stop.is_set():
                return
            taken = await self.sample()
            if taken is None:
                print(f"!! the daemon died (exit {self.daemon.poll() if self.daemon else '?'})", flush=True)
                self.stop.set()
                return
            self.samples.append(taken)
            print(line(taken), flush=True)

    # -- the run --------------------------------------------------------------------------------------

    async def run(self) -> int:
        print(f"starting syncd in {self.work} ...", flush=True)
        try:
            return await self._run()
        finally:
            self.stop_daemon()  # already stopped unless the soak failed on the way

    async def _run(self) -> int:
        args = self.args
        self.start()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as self.session:
            for n in range(args.projects):
                pid = await self.create_project(f"Long-lived {n}")
                assert pid is not None, self.stats.examples
                self.long_lived.append(pid)
            http_project = await self.create_project("HTTP")
            assert http_project is not None, self.stats.examples
            self.http_project = http_project
            await asyncio.sleep(1.0)
            self.started = time.monotonic()
            baseline = await self.sample()
            assert baseline is not None, "the daemon died at once"
            print(
                f"daemon pid {self.pid}, {self.url}; parts {','.join(sorted(args.parts))};"
                f" settings {' '.join(args.setting) or 'default'};"
                f" {args.projects} long-lived projects x {args.loops}"
                f" editor loops, a new project every ~{args.churn_interval:g} s, HTTP every"
                f" ~{args.http_interval:g} s; {args.duration:g} s, a sample every {args.sample:g} s",
                flush=True,
            )
            print(header(), flush=True)
            print(line(baseline), flush=True)
            workers: list[asyncio.Task[None]] = []
            if "churn" in args.parts:
                workers.append(
                    asyncio.create_task(self.every(args.churn_interval, "churn cycle", self.churn_cycle))
                )
            if "http" in args.parts:
                workers.append(
                    asyncio.create_task(self.every(args.http_interval, "http cycle", self.http_cycle))
                )
            if "editors" in args.parts:
                loops = [self.editor_loop(pid) for pid in self.long_lived for _ in range(args.loops)]
                workers += [asyncio.create_task(loop) for loop in loops]
            sampler = asyncio.create_task(self.sampler())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await self.stop.wait()
            self.stop.set()
            await sampler
            print("load stopped; waiting for the cycles under way ...", flush=True)
            try:
                async with asyncio.timeout(90):
                    await asyncio.gather(*workers, return_exceptions=True)
            except TimeoutError:
                for task in workers:
                    task.cancel()
                self.stats.error("cycles still running 90 s after the stop")
            for editor in list(self.live):
                await editor.drop()
            settled = None if self.died else await self.settle()
            if args.linger > 0 and not self.died:
                print(f"idle daemon, sampled for {args.linger:g} s more:", flush=True)
                end = time.monotonic() + args.linger
                while time.monotonic() < end and (taken := await self.sample()) is not None:
                    print(line(taken), flush=True)
                    await asyncio.sleep(min(args.sample, max(0.0, end - time.monotonic())))
        code = self.stop_daemon()
        return self.report(baseline, settled, code)

    async def settle(self) -> tuple[float, Sample | None]:
        """Wait until the daemon has closed every project and saved everything; (seconds, sample)."""
        print(
            f"every editor gone; waiting up to {3 * self.args.idle_timeout + 30:g} s for the idle"
            " projects to close ...",
            flush=True,
        )
        start = time.monotonic()
        deadline = start + 3 * self.args.idle_timeout + 30
        taken: Sample | None = None
        while time.monotonic() < deadline:
            taken = await self.sample()
            if taken is None:
                break
            if all(taken.metrics.get(g, -1) == 0 for g in GAUGES):
                break
            await asyncio.sleep(2.0)
        return time.monotonic() - start, taken

    # -- the report -----------------------------------------------------------------------------------

    def report(self, baseline: Sample, settled: tuple[float, Sample | None] | None, code: int | None) -> int:
        args, stats = self.args, self.stats
        lost = stats.sent - stats.acked - stats.refused
        print()
        print(f"syncd soak: {args.duration:g} s, {len(self.samples)} samples; daemon exit code {code}")
        warm = [s for s in self.samples if s.t >= args.warmup]
        if len(warm) >= 2:
            first, last = warm[0], warm[-1]
            print(f"\nafter the {args.warmup:g} s warm-up, first and last sample:")
            print(header())
            print(line(first))
            print(line(last))
            hours = (last.t - first.t) / 3600
            print(f"\ngrowth per hour over {last.t - first.t:.0f} s (end points; least-squares fit):")
            series: dict[str, tuple[list[float], str]] = {
                "RSS": ([s.rss / MiB for s in warm], "MiB"),
                "open fds": ([float(s.fds) for s in warm], ""),
                "threads": ([float(s.threads) for s in warm], ""),
            }
            for name in sorted({n for s in warm for n in s.files}):
                series[name] = ([s.files.get(name, 0) / 1024 for s in warm], "KiB")
            for gauge in ("process_resident_memory_bytes", "process_open_fds"):
                if gauge in last.metrics:
                    scale = MiB if gauge.endswith("bytes") else 1
                    series[f"/metrics {gauge}"] = ([s.metrics.get(gauge, 0) / scale for s in warm], "")
            times = [s.t for s in warm]
            for name, (values, unit) in series.items():
                delta = (values[-1] - values[0]) / hours
                fit = slope(times, values) * 3600
                print(
                    f"  {name:<40} {values[0]:>12.1f} -> {values[-1]:>12.1f} {unit:<4}"
                    f" {delta:>+12.1f}/h  (fit {fit:>+12.1f}/h)"
                )
            rates = [s.cpu for s in warm if s.cpu == s.cpu]  # not NaN
            if rates:
                mean = sum(rates) / len(rates)
                print(f"  daemon CPU: mean {mean:.1f} %, max {max(rates):.1f} % of one core")
        else:
            print(f"\n(fewer than two samples after the {args.warmup:g} s warm-up: no growth rates)")

        print("\nthe workload:")
        for name, count in sorted(stats.cycles.items()):
            print(f"  {name:<32} {count}")
        print(f"  {'HTTP calls':<32} {stats.http_calls}")
        print(f"  {'refusals checked (probes)':<32} {stats.probes}")
        print(f"  {'mutations sent':<32} {stats.sent}")
        print(f"  {'acknowledged':<32} {stats.acked}")
        print(f"  {'refused (probes)':<32} {stats.refused}")
        print(f"  {'lost (no answer)':<32} {lost}")
        if stats.errors:
            print(f"\nerrors seen by the load ({sum(stats.errors.values())}):")
            for kind, count in stats.errors.most_common():
                print(f"  {count:>6}  {kind}: {stats.examples[kind]}")
        else:
            print("\nerrors seen by the load: none")

        print("\nafter the load (every editor gone):")
        took, end = settled if settled is not None else (0.0, None)
        if end is None:
            print("  the daemon was not there to be read")
        else:
            for gauge in GAUGES:
                value = end.metrics.get(gauge, float("nan"))
                print(f"  {gauge:<32} {value:g} (expected 0)")
            back = all(end.metrics.get(g, -1) == 0 for g in GAUGES)
            print(f"  {'back to 0' if back else 'NOT back to 0'} after {took:.0f} s")
            print(
                f"  open fds {end.fds} (before the load {baseline.fds}), threads {end.threads} (before"
                f" {baseline.threads}), RSS {end.rss / MiB:.1f} MiB (before {baseline.rss / MiB:.1f})"
            )
            others = {k: v for k, v in end.metrics.items() if k.startswith("syncd_") and "{" not in k}
            print("  every unlabelled syncd_ value of /metrics:")
            for name, value in sorted(others.items()):
                print(f"    {name:<40} {value:g}")

        print(f"\nthe daemon's log ({self.log_path}):")
        for text, count in log_lines(self.log_path):
            print(f"  {count:>6}  {text}")
        if args.keep:
            print(f"\nstate and log kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.died:
            print("\nFAILED: the daemon died during the soak")
            return 1
        if lost > 0:
            print(f"\nFAILED: {lost} edits lost")
            return 1
        return 0


# ---- printing ---------------------------------------------------------------------------------------


def header() -> str:
    """The sample table's header."""
    return (
        f"{'t s':>6} {'rss MiB':>8} {'fds':>4} {'thr':>3} {'cpu%':>5} |"
        f" {'store':>7} {'s-wal':>7} {'outbox':>7} {'o-wal':>7} {'other':>6} KiB |"
        f" {'ed':>3} {'ours':>4} {'proj':>4} {'pend':>4} {'obox':>4} |"
        f" {'churn':>5} {'sess':>5} {'http':>5} {'sent':>7} {'acked':>7} {'err':>4}"
    )


def line(s: Sample) -> str:
    """One sample as a line of the table."""
    kib = [s.files.get(name, 0) / 1024 for name in TABLE_FILES]
    other = sum(v for k, v in s.files.items() if k not in TABLE_FILES) / 1024
    gauges = [s.metrics.get(g, -1) for g in GAUGES]
    cpu = "-" if s.cpu != s.cpu else f"{s.cpu:.1f}"  # NaN: no interval to measure over
    return (
        f"{s.t:>6.0f} {s.rss / MiB:>8.1f} {s.fds:>4} {s.threads:>3} {cpu:>5} |"
        f" {kib[0]:>7.0f} {kib[1]:>7.0f} {kib[2]:>7.0f} {kib[3]:>7.0f} {other:>6.0f}     |"
        f" {gauges[0]:>3.0f} {s.ours:>4} {gauges[1]:>4.0f} {gauges[2]:>4.0f} {gauges[3]:>4.0f} |"
        f" {s.cycles:>5} {s.sessions:>5} {s.http:>5} {s.sent:>7} {s.acked:>7} {s.errors:>4}"
    )


def fds_and_threads(pid: int) -> tuple[int, int]:
    """A process's open file descriptors and threads."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("Threads:"):
            return fds, int(text.split()[1])
    raise ValueError(f"no Threads line in /proc/{pid}/status")


def slope(xs: list[float], ys: list[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def log_lines(path: Path) -> list[tuple[str, int]]:
    """The log's distinct WARNING/ERROR/Traceback lines (ids and numbers masked), with their counts."""
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for text in log:
            if not any(word in text for word in ("Traceback", "ERROR", "WARNING", "CRITICAL")):
                continue
            level = text.find("WARNING") if "WARNING" in text else text.find("ERROR")
            text = text[level:] if level >= 0 else text
            text = UUID_RE.sub("<id>", text.strip())
            counts[re.sub(r"\b\d+(\.\d+)?\b", "<n>", text)[:200]] += 1
    return counts.most_common() or [("no WARNING, ERROR or Traceback line", 0)]


# ---- main -------------------------------------------------------------------------------------------


def main() -> int:
    """Parse the flags and run the soak."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1200.0, help="seconds of load (default 1200)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds before growth is measured (default 120; a quarter of runs under 8 minutes)",
    )
    parser.add_argument("--projects", type=int, default=5, help="long-lived projects (default 5)")
    parser.add_argument(
        "--loops", type=int, default=2, help="editor loops per long-lived project (default 2)"
    )
    parser.add_argument("--churn-interval", type=float, default=4.0, help="seconds between new projects (4)")
    parser.add_argument("--http-interval", type=float, default=2.0, help="seconds between HTTP rounds (2)")
    parser.add_argument(
        "--idle-timeout", type=float, default=30.0, help="the daemon's project_idle_timeout (default 30)"
    )
    parser.add_argument(
        "--parts",
        type=lambda text: set(text.split(",")),
        default={"churn", "editors", "http"},
        help="the parts of the workload to run, of churn,editors,http (default all three)",
    )
    parser.add_argument(
        "--linger", type=float, default=0.0, help="seconds to keep sampling the idle daemon after the load"
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a daemon setting, such as engine.history_size=500 (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", help="the daemon's log level (default INFO)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory and the daemon log")
    args = parser.parse_args()
    if not args.parts or not args.parts <= {"churn", "editors", "http"}:
        parser.error("--parts takes a comma-separated list of churn, editors and http")
    if args.warmup is None:
        args.warmup = 120.0 if args.duration >= 480 else args.duration / 4
    return asyncio.run(Soak(args).run())


if __name__ == "__main__":
    sys.exit(main())
