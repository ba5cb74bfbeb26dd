"""Graceful shutdown of ``syncd run``: SIGTERM writes what is pending, closes editors with 1012 and exits 0;
a second signal exits at once and leaves the unwritten edits in the outbox for the next start."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from localsupabase.app import LocalSupabase
from tests.service.conftest import (
    LONG_QUIET,
    WAIT,
    DaemonFactory,
    RecorderFactory,
    db_scene_bodies,
    seed_standin,
    supabase_env,
)
from tests.support.daemon import FAST_SAVES
from tests.support.store import outbox_count, store_rows
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ANONYMOUS = {"SYNCD_AUTH__ALLOW_ANONYMOUS": "true"}
"""Supabase mode refuses token-less editors unless this is set."""


def _saved_before_close(frames: list[dict[str, object]], ack_seq: int) -> bool:
    """Whether a ``saved`` covering ``ack_seq`` came after that ack (every frame arrived before the close)."""
    kinds = [(f["type"], f.get("seq")) for f in frames]
    ack_at = kinds.index(("ack", ack_seq))
    return any(kind == "saved" and isinstance(seq, int) and seq >= ack_seq for kind, seq in kinds[ack_at:])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_sigterm_writes_debounced_edits_to_the_local_store(
    start_daemon: DaemonFactory, recorder: RecorderFactory, sig: signal.Signals
) -> None:
    """SIGTERM with edits in a 30 s debounce saves them to store.db, sends saved, closes 1012, exits 0.
    So does SIGHUP, which closing the terminal of ``syncd run`` sends: it ended the process at once."""
    daemon = await start_daemon(LONG_QUIET)
    project_id, state = daemon.project_id, daemon.state_dir
    editor = await recorder(daemon.url)
    snapshot = await editor.join(project_id)
    scene = snapshot["scenes"][0]["id"]
    mids = [await editor.patch("scenes", scene, {"body": f"draft {i}"}) for i in range(5)]
    ack = await editor.acked(mids[-1])
    assert store_rows(state, "scenes", project_id)[scene]["body"] != "draft 4"
    assert outbox_count(state) == 5

    daemon.signal(sig)
    closed_with, _ = await editor.closed()
    assert closed_with == 1012
    assert await daemon.exit_code() == 0
    assert store_rows(state, "scenes", project_id)[scene]["body"] == "draft 4"
    assert _saved_before_close(editor.frames, ack["seq"]), editor.frames
    assert outbox_count(state) == 0
    assert "stopped" in daemon.stderr


async def test_sigterm_writes_debounced_edits_to_supabase(
    start_daemon: DaemonFactory, recorder: RecorderFactory, standin: LocalSupabase
) -> None:
    """In Supabase mode SIGTERM writes pending edits to the database, closes editors with 1012, exits 0."""
    project_id, scenes = await seed_standin(standin)
    daemon = await start_daemon({**supabase_env(standin), **LONG_QUIET, **ANONYMOUS})
    editor = await recorder(daemon.url)
    await editor.join(project_id)
    await editor.patch("scenes", scenes[0], {"body": "first"})
    last = await editor.patch("scenes", scenes[1], {"body": "second"})
    ack = await editor.acked(last)
    assert await db_scene_bodies(standin, project_id) == {scenes[0]: "", scenes[1]: ""}

    daemon.signal(signal.SIGTERM)
    closed_with, _ = await editor.closed()
    assert closed_with == 1012
    assert await daemon.exit_code() == 0
    assert await db_scene_bodies(standin, project_id) == {scenes[0]: "first", scenes[1]: "second"}
    assert _saved_before_close(editor.frames, ack["seq"]), editor.frames
    assert outbox_count(daemon.state_dir) == 0


async def test_second_sigterm_exits_at_once_and_the_outbox_keeps_the_edits(
    start_daemon: DaemonFactory, recorder: RecorderFactory, standin: LocalSupabase
) -> None:
    """A second SIGTERM while writes fail exits non-zero at once; the outbox keeps the edits for a restart."""
    project_id, scenes = await seed_standin(standin)
    env = {**supabase_env(standin), **LONG_QUIET, **ANONYMOUS, "SYNCD_DAEMON__SHUTDOWN_TIMEOUT": "30"}
    daemon = await start_daemon(env)
    editor = await recorder(daemon.url)
    await editor.join(project_id)
    mids = [await editor.patch("scenes", scenes[0], {"body": f"take {i}"}) for i in range(3)]
    await editor.acked(mids[-1])

    standin.faults.rest_unavailable = True
    daemon.signal(signal.SIGTERM)
    # The shutdown is now stuck retrying the write (30 s allowed); wait until it has failed once.
    await daemon.wait_log(f"writing project {project_id} failed")
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    sent = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code = await daemon.exit_code()
    assert code != 0
    assert time.monotonic() - sent < WAIT  # far below the 30 s shutdown timeout
    assert "second stop request" in daemon.stderr
    assert outbox_count(daemon.state_dir) == 3
    assert await db_scene_bodies(standin, project_id) == {scenes[0]: "", scenes[1]: ""}

    standin.faults.rest_unavailable = False
    daemon.env.update(FAST_SAVES)
    await asyncio.to_thread(daemon.start, 30.0)

    async def replayed() -> bool:
        return (await db_scene_bodies(standin, project_id))[scenes[0]] == "take 2"

    await wait_for(replayed, lambda: f"the replayed edits in the database; log:\n{daemon.stderr}", WAIT)
    await wait_for(lambda: outbox_count(daemon.state_dir) == 0, "the outbox emptied after the write", WAIT)
