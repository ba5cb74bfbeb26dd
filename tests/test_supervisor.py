"""The supervisor in-process: start-up failures, graceful and forced stops, the state directory's lock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from syncd.adapters.local import LocalBackend
from syncd.config import SyncdSettings
from syncd.core.batch import WriteBatch
from syncd.core.inputs import WriteOk
from syncd.supervisor import EXIT_FAILED, EXIT_OK, Supervisor

WAIT = 10.0


def settings(state_dir: Path, port: int = 0) -> SyncdSettings:
    """Local mode on a free port, with a debounce long enough that edits stay pending until a stop."""
    return SyncdSettings(
        daemon={"state_dir": state_dir, "shutdown_timeout": 5.0},
        gateway={"port": port},
        debounce={"quiet": 60.0, "max_wait": 120.0},
    )


async def make_project(state_dir: Path) -> tuple[str, str]:
    """A project with one scene in the embedded store; returns their ids."""
    async with LocalBackend(state_dir / "store.db") as store:
        project = await store.create_project("Supervised")
        scene = "5c000000-0000-4000-8000-000000000001"
        op = {"op": "insert", "table": "scenes", "id": scene, "row": {"scene_index": 0}, "by": ["c", 1]}
        await store.apply_encoded({"project_id": project["id"], "ops": [op], "mutations": [["c", 1]]})
    return str(project["id"]), scene


class Gate(LocalBackend):
    """The embedded store, with writes held until :attr:`open` is set (a slow database)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.open = asyncio.Event()

    async def apply(self, batch: WriteBatch) -> WriteOk:
        await self.open.wait()
        return await super().apply(batch)


async def started(sup: Supervisor) -> asyncio.Task[int]:
    task = asyncio.create_task(sup.serve())
    ready = asyncio.create_task(sup.ready.wait())
    await asyncio.wait({task, ready}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    assert not task.done(), "the supervisor stopped during start-up"
    return task


async def join(sup: Supervisor, project_id: str) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{sup.gateway.port}/v1/editor")
    client_id = "c1000000-0000-4000-8000-" + os.urandom(6).hex()
    hello = {"type": "hello", "protocol": 1, "project_id": project_id, "client_id": client_id}
    await ws.send(json.dumps(hello))
    while (await frame(ws))["type"] != "snapshot":
        pass
    return ws


async def frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        data: dict[str, Any] = json.loads(await ws.recv())
    return data


async def patch(ws: ClientConnection, mid: int, scene: str, body: str) -> None:
    await ws.send(
        json.dumps({"type": "patch", "mid": mid, "table": "scenes", "id": scene, "set": {"body": body}})
    )


async def until_ack(ws: ClientConnection, mid: int) -> None:
    while True:
        got = await frame(ws)
        if got["type"] == "ack" and got["mid"] == mid:
            return


@pytest.fixture
async def project(tmp_path: Path) -> tuple[Path, str, str]:
    state = tmp_path / "state"
    project_id, scene = await make_project(state)
    return state, project_id, scene


async def body_in_store(state: Path, project_id: str) -> str:
    async with LocalBackend(state / "store.db") as store:
        data = await store.read_project(project_id)
    return str(data["scenes"][0]["body"])


async def test_stop_writes_pending_edits_then_closes_editors(project: tuple[Path, str, str]) -> None:
    """A stop request saves the debounced edit, closes the editor with 1012 and returns 0."""
    state, project_id, scene = project
    sup = Supervisor(settings(state))
    task = await started(sup)
    ws = await join(sup, project_id)
    await patch(ws, 1, scene, "kept")
    await until_ack(ws, 1)
    sup.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    assert ws.close_code == 1012
    assert await body_in_store(state, project_id) == "kept"


async def test_second_stop_cuts_the_drain_short_and_takes_no_new_edit(project: tuple[Path, str, str]) -> None:
    """While a stop waits on the database, new edits get no ack; a second request returns 1 at once."""
    state, project_id, scene = project
    store = Gate(state / "store.db")
    sup = Supervisor(settings(state), backend=store)
    task = await started(sup)
    ws = await join(sup, project_id)
    await patch(ws, 1, scene, "acked")
    await until_ack(ws, 1)
    sup.request_stop()
    await patch(ws, 2, scene, "after the stop")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await until_ack(ws, 2)
    assert not task.done()
    sup.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_FAILED
    assert await body_in_store(state, project_id) != "after the stop"
    restarted = Supervisor(settings(state))
    task = await started(restarted)  # the outbox kept mid 1: the restart saves it
    restarted.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK
    assert await body_in_store(state, project_id) == "acked"


async def test_sigterm_twice_is_a_forced_stop_not_a_kill(project: tuple[Path, str, str]) -> None:
    """Real signals only set flags: two SIGTERMs 50 ms apart end run() with code 1, the process lives."""
    state, project_id, scene = project
    store = Gate(state / "store.db")
    sup = Supervisor(settings(state), backend=store)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        task = asyncio.create_task(sup.run())
        await asyncio.wait_for(sup.ready.wait(), WAIT)
        ws = await join(sup, project_id)
        await patch(ws, 1, scene, "pending")
        await until_ack(ws, 1)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, WAIT) == EXIT_FAILED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def test_second_daemon_on_one_state_dir_is_refused(
    project: tuple[Path, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A second supervisor on a state directory in use stops at start with one clear line and code 1."""
    state, _, _ = project
    first = Supervisor(settings(state))
    task = await started(first)
    with caplog.at_level(logging.ERROR, logger="syncd"):
        assert await Supervisor(settings(state)).serve() == EXIT_FAILED
    assert f"state directory {state} is in use by another syncd (pid {os.getpid()})" in caplog.text
    first.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK


async def test_removed_state_dir_stops_the_daemon(project: tuple[Path, str, str]) -> None:
    """Deleting the state directory under a running daemon makes it fail (code 1) and not ready."""
    state, _, _ = project
    sup = Supervisor(settings(state))
    task = await started(sup)
    assert sup.readiness()[0]
    shutil.rmtree(state)
    assert await asyncio.wait_for(task, WAIT) == EXIT_FAILED
    assert sup.readiness() == (False, "stopping")


async def test_port_in_use_is_one_line(
    project: tuple[Path, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A taken port ends start-up with code 1 and a line naming the address, no traceback."""
    state, _, _ = project
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="syncd"):
            assert await Supervisor(settings(state, port)).serve() == EXIT_FAILED
    assert f"cannot start: cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("name", ["store.db", "outbox.db"])
async def test_corrupt_database_file_is_one_line(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A state file that is not a database ends start-up with code 1 and a line saying so."""
    state = tmp_path / "state"
    state.mkdir()
    (state / name).write_bytes(b"this is not a database, only text " * 100)
    with caplog.at_level(logging.ERROR, logger="syncd"):
        assert await Supervisor(settings(state)).serve() == EXIT_FAILED
    assert "cannot start:" in caplog.text
    assert "unreadable" in caplog.text or "not a database" in caplog.text


@pytest.mark.parametrize("name", ["store.db", "outbox.db"])
async def test_a_state_file_from_a_newer_syncd_is_refused_untouched(
    project: tuple[Path, str, str], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store or journal that a newer syncd stamped ends start-up with a line saying so, and no byte of
    it changes: this build might misread what the newer one wrote there."""
    state, _, _ = project
    if name == "outbox.db":
        sup = Supervisor(settings(state))
        task = await started(sup)
        sup.request_stop()
        assert await asyncio.wait_for(task, WAIT) == EXIT_OK
    with sqlite3.connect(state / name) as db:
        known = db.execute("pragma user_version").fetchone()[0]
        assert known >= 1
        db.execute(f"pragma user_version = {known + 1}")
    db.close()
    before = (state / name).read_bytes()
    with caplog.at_level(logging.ERROR, logger="syncd"):
        assert await Supervisor(settings(state)).serve() == EXIT_FAILED
    assert f"{state / name} was written by a newer syncd (file format {known + 1}" in caplog.text
    assert "Traceback" not in caplog.text
    assert (state / name).read_bytes() == before


async def test_undecodable_journal_row_is_one_line(
    project: tuple[Path, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A journal row that cannot be read back stops start-up with a line naming it, not a traceback."""
    state, project_id, scene = project
    sup = Supervisor(settings(state), backend=Gate(state / "store.db"))  # the save never completes
    task = await started(sup)
    ws = await join(sup, project_id)
    await patch(ws, 1, scene, "journaled")
    await until_ack(ws, 1)
    sup.request_stop()
    sup.request_stop()  # forced: the edit stays in the journal
    assert await asyncio.wait_for(task, WAIT) == EXIT_FAILED
    with sqlite3.connect(state / "outbox.db") as db:
        assert db.execute("update journal set mutation = '{not json'").rowcount == 1
    with caplog.at_level(logging.ERROR, logger="syncd"):
        assert await Supervisor(settings(state)).serve() == EXIT_FAILED
    assert "journal row" in caplog.text
    assert "cannot be decoded" in caplog.text
    assert "move it aside" in caplog.text
    assert "Traceback" not in caplog.text
