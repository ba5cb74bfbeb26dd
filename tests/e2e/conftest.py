"""Fixtures and tools of the end-to-end tests: daemons, raw editor sockets, the store, tokens.

Every daemon here is ``python -m syncd run`` in its own process (:class:`Daemon`), with a state
directory under the test's temporary folder and its settings in the environment: a short debounce
where a test waits for saves, a debounce longer than any test where the stream must hold only what
the editors do. One daemon (:func:`shared_daemon`) serves every test that only needs a project of
its own on it. Nothing sleeps for a fixed time: sockets are read with timeouts, and conditions
outside a socket (the store on disk, the daemon's log) are polled until they hold or a deadline passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from syncd.adapters.local import LocalBackend
from tests.support.daemon import DaemonProcess

Frame: TypeAlias = dict[str, Any]

WAIT = 5.0
"""Seconds any single expected event may take; generous, so a loaded machine does not fail a test."""

JWT_SECRET = "e2e-test-jwt-secret-0123456789abcdef0123456789"
"""The HS256 secret of the shared daemon (long enough for PyJWT's key-length check)."""

FAST_SAVES = {"SYNCD_DEBOUNCE__QUIET": "0.2", "SYNCD_DEBOUNCE__MAX_WAIT": "1"}
"""A debounce short enough that saves happen within a test."""

NO_SAVES = {"SYNCD_DEBOUNCE__QUIET": "60", "SYNCD_DEBOUNCE__MAX_WAIT": "120"}
"""A debounce longer than any test: edits stay in the outbox, and no ``db`` change joins the stream."""

SHARED_MAX_FRAME = 4096
"""``max_frame_bytes`` of the shared daemon, small so that an oversized frame is cheap to send."""


# ---- daemons ------------------------------------------------------------------------------------


Daemon = DaemonProcess


DaemonFactory: TypeAlias = Callable[..., Daemon]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start ``syncd run`` processes for one test (each with its own state directory); stop them after."""
    started: list[Daemon] = []

    def start(env: Mapping[str, str] | None = None, *, name: str = "state") -> Daemon:
        daemon = Daemon(tmp_path / name, env={**FAST_SAVES, **(env or {})})
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the tests that only need their own project on it (bad input, auth, HTTP)."""
    # No debounce saves: a test's stream then holds only what its editors do (no ``db`` changes).
    env = {
        **NO_SAVES,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "SYNCD_GATEWAY__MAX_FRAME_BYTES": str(SHARED_MAX_FRAME),
    }
    daemon = Daemon(tmp_path_factory.mktemp("shared") / "state", env=env)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "SUPABASE_", "NOTIFY_"))}


def syncd_cli(state_dir: Path, *args: str) -> str:
    """Run ``syncd ARGS --state-dir STATE_DIR`` as its own process and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "syncd", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=state_dir.parent,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"syncd {' '.join(args)} failed ({done.returncode}): {done.stderr}"
    return done.stdout


def create_project(daemon: DaemonProcess, title: str, user_id: str | None = None) -> str:
    """Create a project in the daemon's store with ``syncd project create``; return its id."""
    args = ["project", "create", title]
    if user_id is not None:
        args += ["--user", user_id]
    return syncd_cli(daemon.state_dir, *args).strip()


def show_project(daemon: DaemonProcess, project_id: str) -> dict[str, Any]:
    """The project as the store holds it, read with ``syncd project show``."""
    data: dict[str, Any] = json.loads(syncd_cli(daemon.state_dir, "project", "show", project_id))
    return data


async def seed_project(
    daemon: DaemonProcess, title: str, *, user_id: str | None = None, scenes: int = 2
) -> tuple[str, list[str]]:
    """Put a project with ``scenes`` scenes into the daemon's store (test setup, in this process).

    Returns:
        The project id and its scene ids in scene order.
    """
    seeder = str(uuid.uuid4())
    scene_ids = [str(uuid.uuid4()) for _ in range(scenes)]
    async with LocalBackend(daemon.state_dir / "store.db") as store:
        project = await store.create_project(title, user_id)
        ops = [
            {
                "op": "insert",
                "table": "scenes",
                "id": scene_id,
                "row": {"scene_index": index, "heading": f"Scene {index + 1}", "body": "", "duration": 5.0},
                "by": [seeder, index + 1],
            }
            for index, scene_id in enumerate(scene_ids)
        ]
        mutations = [[seeder, index + 1] for index in range(scenes)]
        await store.apply_encoded({"project_id": project["id"], "ops": ops, "mutations": mutations})
    return str(project["id"]), scene_ids


def store_rows(state_dir: Path, table: str, project_id: str) -> dict[str, dict[str, Any]]:
    """The rows of ``table`` that belong to a project, read straight from ``store.db`` (read-only)."""
    owner = "id" if table == "projects" else "project_id"
    assert table in ("projects", "scenes", "clips")
    db = sqlite3.connect(f"file:{state_dir / 'store.db'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute(f"select * from {table} where {owner} = ?", (project_id,)).fetchall()  # noqa: S608
    finally:
        db.close()
    return {row["id"]: dict(row) for row in rows}


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:  # noqa: ASYNC109
    """Poll a condition outside any socket (the store, a log) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# ---- tokens -------------------------------------------------------------------------------------


def make_token(user_id: str, *, secret: str = JWT_SECRET, expires_in: float = 3600.0) -> str:
    """A Supabase-style HS256 access token for ``user_id``."""
    claims = {
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": int(time.time()) - 10,
        "exp": int(time.time() + expires_in),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


# ---- a raw editor socket --------------------------------------------------------------------------


class RawEditor:
    """An editor on a bare WebSocket, to send any bytes and see every frame exactly as the daemon sent it.

    Args:
        ws: the open connection.
        client_id: the ``client_id`` it says hello with.
    """

    def __init__(self, ws: ClientConnection, client_id: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.next_mid = 1
        self.welcome: Frame = {}

    async def send(self, frame: Mapping[str, Any] | str | bytes) -> None:
        """Send a frame: a mapping as JSON, text and bytes as they are."""
        if isinstance(frame, Mapping):
            await self.ws.send(json.dumps(frame))
        else:
            await self.ws.send(frame)

    async def hello(
        self,
        project_id: str,
        *,
        token: str | None = None,
        resume: tuple[str, int] | None = None,
    ) -> None:
        """Send ``hello``."""
        await self.send(
            {
                "type": "hello",
                "protocol": 1,
                "project_id": project_id,
                "client_id": self.client_id,
                "token": token,
                "resume": None if resume is None else {"epoch": resume[0], "seq": resume[1]},
            }
        )

    async def recv(self, timeout: float = WAIT) -> Frame:  # noqa: ASYNC109
        """The next frame, whatever its type."""
        async with asyncio.timeout(timeout):
            data = await self.ws.recv()
        frame: Frame = json.loads(data)
        return frame

    async def expect(self, kind: str, timeout: float = WAIT) -> Frame:  # noqa: ASYNC109
        """The next frame that is not ``presence``; it must be of type ``kind``."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] != "presence":
                assert frame["type"] == kind, f"expected a {kind} frame, got {frame}"
                return frame

    async def frames_until(self, kind: str, timeout: float = WAIT) -> list[Frame]:  # noqa: ASYNC109
        """Every frame up to and including the next one of type ``kind``, ``presence`` left out."""
        frames = []
        while True:
            frame = await self.recv(timeout)
            if frame["type"] != "presence":
                frames.append(frame)
            if frame["type"] == kind:
                return frames

    async def join(self, project_id: str, *, token: str | None = None) -> Frame:
        """Say hello without resume; check ``welcome``, then return the ``snapshot``."""
        await self.hello(project_id, token=token)
        self.welcome = await self.expect("welcome")
        assert self.welcome["project_id"] == project_id
        return await self.expect("snapshot")

    async def patch(self, table: str, row_id: str, values: Mapping[str, Any], mid: int | None = None) -> int:
        """Send a ``patch`` (with the next mid unless one is given); return its mid."""
        if mid is None:
            mid = self.next_mid
        self.next_mid = max(self.next_mid, mid + 1)
        await self.send({"type": "patch", "mid": mid, "table": table, "id": row_id, "set": dict(values)})
        return mid

    async def closed(self, timeout: float = WAIT) -> tuple[int | None, list[Frame]]:  # noqa: ASYNC109
        """Read until the daemon closes the connection; return the close code and the frames read."""
        frames = []
        async with asyncio.timeout(timeout):
            try:
                while True:
                    frames.append(json.loads(await self.ws.recv()))
            except ConnectionClosed:
                pass
        return self.ws.close_code, frames


RawFactory: TypeAlias = Callable[..., Awaitable[RawEditor]]


@pytest.fixture
async def raw_editor() -> AsyncIterator[RawFactory]:
    """Open raw editor sockets to a daemon; close them after the test."""
    opened: list[RawEditor] = []

    async def open_editor(url: str, *, client_id: str | None = None, **connect_args: Any) -> RawEditor:
        ws = await connect(url, open_timeout=WAIT, close_timeout=1, compression=None, **connect_args)
        editor = RawEditor(ws, client_id or str(uuid.uuid4()))
        opened.append(editor)
        return editor

    yield open_editor
    for editor in opened:
        await editor.ws.close()
