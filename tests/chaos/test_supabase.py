"""Chaos in Supabase mode (against the stand-in): ``kill -9`` under load, Realtime drops, database
refusals, a state directory deleted under the daemon.

Three editors edit their own rows throughout each fault (reconnecting and resending what has no answer);
then the database must hold every acknowledged edit once (see :mod:`tests.chaos.workload`).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import urllib.error
import uuid
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from tests.chaos.conftest import ChaosSupabase, Daemons, Report, finish, kill_and_restart
from tests.chaos.workload import Workload, reconnects
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

EDITORS = 3
KILLS = 3
DELETIONS = 2
STOP_WITHIN = 5.0
"""Seconds a daemon may take to stop once its state directory is gone (it looks every second)."""
QUICK_SAVES = {"SYNCD_DEBOUNCE__QUIET": "0.1", "SYNCD_DEBOUNCE__MAX_WAIT": "0.3"}
"""Saves several times a second, so that every fault meets a few of them."""
FAULT_PERIOD = 4.0
"""Seconds during which faults are injected in the Realtime and refusal scenarios."""


async def test_kill9_supabase(
    tmp_path: Path, standin: ChaosSupabase, daemons: Daemons, chaos_seed: int, chaos_report: Report
) -> None:
    """``kill -9`` at random moments under load loses no acknowledged edit and applies none twice."""
    rng = random.Random(f"{chaos_seed}/kill9-supabase")
    store = standin.store
    project_id, scenes = await store.seed(EDITORS)
    daemon = await daemons.start(tmp_path / "state", standin.env())
    workload = Workload(daemon.url, project_id, scenes, rng)
    try:
        await workload.start()
        unsaved = 0
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            unsaved += await kill_and_restart(daemon, rng.uniform(0.0, 0.3), workload, store)
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        await finish(
            "kill9-supabase",
            workload,
            standin.store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, {KILLS} kills with {unsaved} acknowledged edits unsaved, "
                f"{reconnects(workload)}"
            ),
        )
    finally:
        await workload.close()


async def test_realtime_drops(
    tmp_path: Path, standin: ChaosSupabase, daemons: Daemons, chaos_seed: int, chaos_report: Report
) -> None:
    """Realtime sockets dropped, refused and silenced while editors and another writer change the project.

    Editors' edits are kept once each, and every view reaches the database's state, including what the
    other writer changed while the daemon was not hearing Realtime.
    """
    rng = random.Random(f"{chaos_seed}/realtime-drops")
    project_id, scenes = await standin.store.seed(EDITORS)
    daemon = await daemons.start(tmp_path / "state", standin.env({"SYNCD_SUPABASE__RESYNC_INTERVAL": "1"}))
    workload = Workload(daemon.url, project_id, scenes, rng)
    realtime = standin.supabase.realtime
    faults: Counter[str] = Counter()
    writes = 0
    stop = asyncio.Event()

    async def other_writer() -> None:
        nonlocal writes
        while not stop.is_set():
            writes += 1
            await standin.store.pool.execute(
                "update public.projects set script = $2 where id = $1", uuid.UUID(project_id), f"x.{writes}"
            )
            await standin.store.pool.execute(
                "update public.scenes set duration = $2 where id = $1", uuid.UUID(rng.choice(scenes)), writes
            )
            await asyncio.sleep(0.05)

    try:
        await workload.start()
        writer = asyncio.create_task(other_writer())
        deadline = time.monotonic() + FAULT_PERIOD
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            fault = rng.choice(
                ["drop 1006", "drop 1011", "drop 1012", "system error", "slot lost", "refused"]
            )
            faults[fault] += 1
            if fault.startswith("drop"):
                await realtime.drop_sockets(int(fault.split()[1]))
            elif fault == "system error":
                await realtime.push_system_error()
            elif fault == "slot lost":
                await realtime.restart_poller()
            else:
                standin.supabase.faults.refuse_handshake = 503
                await realtime.drop_sockets(1006)
                await asyncio.sleep(rng.uniform(0.3, 0.8))
                standin.supabase.faults.refuse_handshake = None
        stop.set()
        await writer
        await wait_for(partial(ready, daemon), "/readyz to answer 200 again", 20.0)
        await finish(
            "realtime-drops",
            workload,
            standin.store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, {sum(faults.values())} Realtime faults,"
                f" {writes} writes by another writer"
            ),
        )
        await views_show_other_writer(workload, standin, project_id)
    finally:
        stop.set()
        await workload.close()


async def ready(daemon: DaemonProcess) -> bool:
    """Whether the daemon's ``/readyz`` answers 200 (Realtime connected, the project subscribed)."""
    try:
        await daemon.get("/readyz")
    except urllib.error.HTTPError:
        return False
    return True


async def views_show_other_writer(workload: Workload, standin: ChaosSupabase, project_id: str) -> None:
    """Wait until every view shows the other writer's last script and scene durations."""

    async def shown() -> bool:
        db = await standin.store.read(project_id)
        for editor in workload.editors:
            view = editor.client.view
            if view.project is None or view.project.get("script") != db.project.get("script"):
                return False
            if any(view.scenes[i].get("duration") != row.get("duration") for i, row in db.scenes.items()):
                return False
        return True

    await wait_for(shown, "the other writer's last changes in every editor's view", 20.0)


async def test_database_refusals(
    tmp_path: Path, standin: ChaosSupabase, daemons: Daemons, chaos_seed: int, chaos_report: Report
) -> None:
    """Writes refused (REST down, the transaction failing) or committed with the answer lost, under load."""
    rng = random.Random(f"{chaos_seed}/db-refusals")
    project_id, scenes = await standin.store.seed(EDITORS)
    daemon = await daemons.start(tmp_path / "state", standin.env(QUICK_SAVES))
    workload = Workload(daemon.url, project_id, scenes, rng)
    rest = standin.rest
    try:
        await workload.start()
        deadline = time.monotonic() + FAULT_PERIOD
        while time.monotonic() < deadline:
            for fault in rng.sample(["rest down", "refused", "answer lost"], 3):
                await asyncio.sleep(rng.uniform(0.1, 0.4))
                await refuse_once(standin, fault, rng)
        await finish(
            "db-refusals",
            workload,
            standin.store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, {rest.answers_lost} answers lost after commit, "
                f"syncd_apply answered {dict(sorted(rest.statuses.items()))}"
            ),
        )
    finally:
        await workload.close()


async def refuse_once(standin: ChaosSupabase, fault: str, rng: random.Random) -> None:
    """Make the database refuse (or lose the answer of) at least one ``syncd_apply`` call."""
    rest = standin.rest
    refused = sum(n for status, n in rest.statuses.items() if status != 200)
    if fault == "answer lost":
        lost = rest.answers_lost
        rest.lose_answers = 1
        await wait_for(lambda: rest.answers_lost > lost, "a committed batch whose answer is lost", 5.0)
        return
    if fault == "rest down":
        standin.supabase.faults.rest_unavailable = True
    else:
        # Statement timeout, serialization failure, too many connections, an error raised in the
        # transaction (the daemon retries the last one only after its longest delay).
        await standin.store.refuse(rng.choice(["57014", "40001", "53300", "P0001"]))
    try:
        await wait_for(
            lambda: sum(n for status, n in rest.statuses.items() if status != 200) > refused,
            f"a batch refused ({fault})",
            5.0,
        )
        await asyncio.sleep(rng.uniform(0.0, 0.5))
    finally:
        standin.supabase.faults.rest_unavailable = False
        await standin.store.refuse(None)


async def test_deleted_state_dir(
    tmp_path: Path, standin: ChaosSupabase, daemons: Daemons, chaos_seed: int, chaos_report: Report
) -> None:
    """The state directory deleted under load: the daemon stops with exit code 1 within about a second.

    Restarted on a fresh state directory, it must still hold every acknowledged edit: what was
    acknowledged but not saved when the directory went is counted as lost if it is.
    """
    rng = random.Random(f"{chaos_seed}/deleted-state-dir")
    project_id, scenes = await standin.store.seed(EDITORS)
    daemon = await daemons.start(tmp_path / "state-0", standin.env())
    workload = Workload(daemon.url, project_id, scenes, rng)
    stops: list[str] = []
    try:
        await workload.start()
        for round_ in range(1, DELETIONS + 1):
            await asyncio.sleep(rng.uniform(0.5, 1.2))
            await asyncio.to_thread(shutil.rmtree, daemon.state_dir)
            deleted = time.monotonic()
            unsaved = await workload.unsaved(standin.store)
            code = await daemon.exit_code(timeout=10)
            took = time.monotonic() - deleted
            stops.append(f"exit {code} after {took:.1f} s with {unsaved} acknowledged edits unsaved")
            assert code == 1, daemon.stderr
            # The daemon looks every second, then writes what is pending and closes the editors.
            assert took < STOP_WITHIN, f"the daemon took {took:.1f} s to stop"
            assert "was removed while the daemon ran" in daemon.stderr
            daemon.state_dir = tmp_path / f"state-{round_}"
            await daemon.restart()
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        await finish(
            "deleted-state-dir",
            workload,
            standin.store,
            chaos_report,
            lambda: f"seed {chaos_seed}, {DELETIONS} deletions: {', '.join(stops)}; {reconnects(workload)}",
        )
    finally:
        await workload.close()
