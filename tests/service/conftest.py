"""Fixtures of the service tests: ``syncd run`` as a real process, systemd's notify socket, the Supabase
stand-in, Mosquitto's own command-line clients, and an editor socket that records every frame.

Nothing here sleeps for a fixed time: sockets are read with timeouts, and what lies outside a socket
(the store, the daemon's stderr) is polled until it holds or a deadline passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from localsupabase.app import LocalSupabase
from tests.support.daemon import DaemonProcess
from tests.support.editor import RawEditors, RecordingEditor
from tests.support.mosquitto import MosquittoBroker, MosquittoSub
from tests.support.waiting import wait_for

WAIT = 10.0
"""Seconds any single expected event may take; generous, so a loaded machine does not fail a test."""

PREFIX = "omegaframe/v1"
"""The default MQTT topic prefix."""

JWT_SECRET = "service-test-jwt-secret-0123456789abcdef0123456789"
"""The stand-in's JWT secret: it signs the service key and the editors' tokens."""

LONG_QUIET = {"SYNCD_DEBOUNCE__QUIET": "30", "SYNCD_DEBOUNCE__MAX_WAIT": "60"}
"""A debounce longer than any test: edits stay pending until a flush or a shutdown writes them."""


# ---- the daemon -----------------------------------------------------------------------------------


DaemonFactory: TypeAlias = Callable[..., Awaitable[DaemonProcess]]


STARTED = pytest.StashKey[list[DaemonProcess]]()
"""The daemons a test started, kept on its item so that `standin` can stop them before itself."""


async def _stop_daemons(item: pytest.Item) -> None:
    for daemon in item.stash.get(STARTED, []):
        await asyncio.to_thread(daemon.stop)


@pytest.fixture
async def start_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DaemonFactory]:
    """Start ``syncd run`` processes (off the event loop, which may serve the stand-in); stop them after."""
    started = request.node.stash.setdefault(STARTED, [])

    async def start(
        env: Mapping[str, str] | None = None, *, name: str = "state", port: int | None = None
    ) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / name, env=env)
        started.append(daemon)
        await asyncio.to_thread(daemon.start, 30.0, port)
        return daemon

    yield start
    await _stop_daemons(request.node)


# ---- systemd's notify socket ------------------------------------------------------------------------


class NotifyListener:
    """An AF_UNIX datagram socket standing in for systemd's ``$NOTIFY_SOCKET``.

    A thread reads each datagram and calls ``on_message`` (if set) with it right away, so a test can check
    the world at the moment a notification arrives.

    Args:
        path: where to bind the socket.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, list[str]]] = []
        """Each datagram's arrival (monotonic seconds) and its lines."""
        self.on_message: Callable[[list[str]], None] | None = None
        self._condition = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="notify listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            lines = data.decode().split("\n")
            if self.on_message is not None:
                self.on_message(lines)
            with self._condition:
                self.messages.append((time.monotonic(), lines))
                self._condition.notify_all()

    def lines(self) -> list[str]:
        """Every line received so far, in order."""
        with self._condition:
            return [line for _, lines in self.messages for line in lines]

    def count(self, line: str) -> int:
        """How many times ``line`` arrived."""
        return self.lines().count(line)

    async def wait(
        self, predicate: Callable[[NotifyListener], bool], what: str, within: float = WAIT
    ) -> None:
        """Wait until ``predicate(self)`` holds; fail after ``within`` seconds."""
        await wait_for(lambda: predicate(self), lambda: f"{what}; got {self.lines()}", within)

    def close(self) -> None:
        """Stop reading and remove the socket."""
        self._stop = True
        self._thread.join(timeout=5)
        self._sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    """A notify socket in a short temporary folder (AF_UNIX paths are limited to about 100 bytes)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"syncd-notify-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    listener = NotifyListener(folder / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


# ---- the Supabase stand-in ----------------------------------------------------------------------------


@pytest.fixture
async def standin(request: pytest.FixtureRequest, supabase_db: str) -> AsyncIterator[LocalSupabase]:
    """The Supabase stand-in over a fresh database, with a known JWT secret."""
    async with LocalSupabase(supabase_db, jwt_secret=JWT_SECRET) as stack:
        yield stack
        # The test's daemons stop first, whichever fixture it asked for first: one still running
        # reconnects while the stand-in shuts down, and a connection accepted then outlives its loop.
        await _stop_daemons(request.node)


def supabase_env(standin: LocalSupabase) -> dict[str, str]:
    """The environment that puts a daemon in Supabase mode against the stand-in."""
    return {
        "SUPABASE_URL": standin.url,
        "SUPABASE_SERVICE_KEY": standin.service_key,
        "SUPABASE_JWT_SECRET": standin.jwt_secret,
    }


async def seed_standin(
    standin: LocalSupabase, *, user_id: str | None = None, scenes: int = 2
) -> tuple[str, list[str]]:
    """Create a project (owned by ``user_id``, a new ``auth.users`` row) with scenes in the stand-in's DB.

    Returns:
        The project id and its scene ids in scene order.
    """
    pool = standin.pool
    if user_id is not None:
        await pool.execute(
            "insert into auth.users (id, email) values ($1, $2)",
            uuid.UUID(user_id),
            f"{user_id[:8]}@example.test",
        )
    project_id = await pool.fetchval(
        "insert into public.projects (title, user_id) values ($1, $2) returning id::text",
        "Service test",
        None if user_id is None else uuid.UUID(user_id),
    )
    scene_ids = []
    for index in range(scenes):
        scene_id = await pool.fetchval(
            "insert into public.scenes (project_id, scene_index, heading) values ($1, $2, $3)"
            " returning id::text",
            uuid.UUID(project_id),
            index,
            f"Scene {index + 1}",
        )
        scene_ids.append(str(scene_id))
    return str(project_id), scene_ids


async def db_scene_bodies(standin: LocalSupabase, project_id: str) -> dict[str, str]:
    """Scene id -> body, as the stand-in's database holds them."""
    rows = await standin.pool.fetch(
        "select id::text, body from public.scenes where project_id = $1", uuid.UUID(project_id)
    )
    return {row["id"]: row["body"] for row in rows}


# ---- an editor that records every frame -------------------------------------------------------------


RecorderFactory: TypeAlias = Callable[[str], Awaitable[RecordingEditor]]


@pytest.fixture
async def recorder() -> AsyncIterator[RecorderFactory]:
    """Open recording editor sockets; close them after the test."""
    editors = RawEditors(WAIT)
    yield editors.record
    await editors.close()


# ---- Mosquitto's own clients ---------------------------------------------------------------------------


@pytest.fixture
def mqtt_subscriber(mosquitto: MosquittoBroker) -> Iterator[Callable[[str], MosquittoSub]]:
    """Start mosquitto_sub subscribers on the test broker; all are stopped afterwards."""
    started: list[MosquittoSub] = []

    def start(topic: str) -> MosquittoSub:
        subscriber = MosquittoSub(mosquitto, topic)
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()


async def mosquitto_pub(broker: MosquittoBroker, topic: str, payload: Mapping[str, Any]) -> None:
    """Publish one JSON message with the broker's own client (off the event loop)."""
    await asyncio.to_thread(broker.publish, topic, json.dumps(payload), WAIT)
