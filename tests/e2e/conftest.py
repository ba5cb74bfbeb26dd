"""Fixtures and tools of the end-to-end tests: daemons, raw editor sockets, the store, tokens.

Every daemon here is ``python -m syncd run`` in its own process (:class:`DaemonProcess`), with a state
directory under the test's temporary folder and its settings in the environment: a short debounce
where a test waits for saves, a debounce longer than any test where the stream must hold only what
the editors do. One daemon (:func:`shared_daemon`) serves every test that only needs a project of
its own on it. Nothing sleeps for a fixed time: sockets are read with timeouts, and conditions
outside a socket (the store on disk, the daemon's log) are polled until they hold or a deadline passes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import jwt
import pytest

from syncd.adapters.local import LocalBackend
from tests.support.daemon import FAST_SAVES, DaemonProcess, run_syncd
from tests.support.editor import RawEditor, RawEditors

WAIT = 5.0
"""Seconds any single expected event may take; generous, so a loaded machine does not fail a test."""

JWT_SECRET = "e2e-test-jwt-secret-0123456789abcdef0123456789"
"""The HS256 secret of the shared daemon (long enough for PyJWT's key-length check)."""

NO_SAVES = {"SYNCD_DEBOUNCE__QUIET": "60", "SYNCD_DEBOUNCE__MAX_WAIT": "120"}
"""A debounce longer than any test: edits stay in the outbox, and no ``db`` change joins the stream."""

SHARED_MAX_FRAME = 4096
"""``max_frame_bytes`` of the shared daemon, small so that an oversized frame is cheap to send."""


# ---- daemons ------------------------------------------------------------------------------------


DaemonFactory: TypeAlias = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start ``syncd run`` processes for one test (each with its own state directory); stop them after."""
    started: list[DaemonProcess] = []

    def start(env: Mapping[str, str] | None = None, *, name: str = "state") -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / name, env={**FAST_SAVES, **(env or {})})
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the tests that only need their own project on it (bad input, auth, HTTP)."""
    # No debounce saves: a test's stream then holds only what its editors do (no ``db`` changes).
    env = {
        **NO_SAVES,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "SYNCD_GATEWAY__MAX_FRAME_BYTES": str(SHARED_MAX_FRAME),
    }
    daemon = DaemonProcess(tmp_path_factory.mktemp("shared") / "state", env=env)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def syncd_cli(state_dir: Path, *args: str) -> str:
    """Run ``syncd ARGS --state-dir STATE_DIR`` as its own process and return what it printed."""
    done = run_syncd(state_dir, *args, timeout=30)
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


# ---- raw editor sockets ----------------------------------------------------------------------------


RawFactory: TypeAlias = Callable[..., Awaitable[RawEditor]]


@pytest.fixture
async def raw_editor() -> AsyncIterator[RawFactory]:
    """Open raw editor sockets to a daemon; close them after the test."""
    editors = RawEditors(WAIT)
    yield editors.open
    await editors.close()
