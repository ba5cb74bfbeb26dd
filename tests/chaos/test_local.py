"""Chaos in local mode: ``kill -9`` under load, MQTT broker restarts, a full disk.

Three editors edit their own rows throughout each fault (reconnecting and resending what has no answer);
then the store must hold every acknowledged edit once (see :mod:`tests.chaos.workload`).
"""

from __future__ import annotations

import asyncio
import json
import random
from functools import partial
from pathlib import Path

import pytest

from tests.chaos.conftest import Daemons, Report, finish, kill_and_restart
from tests.chaos.stores import LocalStore
from tests.chaos.workload import Workload, reconnects
from tests.support.daemon import DaemonProcess
from tests.support.disk import fill
from tests.support.mosquitto import MosquittoBroker, MosquittoSub
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

EDITORS = 3
KILLS = 4


async def test_kill9_local(tmp_path: Path, daemons: Daemons, chaos_seed: int, chaos_report: Report) -> None:
    """``kill -9`` at random moments under load loses no acknowledged edit and applies none twice."""
    rng = random.Random(f"{chaos_seed}/kill9-local")
    store = LocalStore(tmp_path / "state")
    project_id, scenes = await store.seed(EDITORS)
    daemon = await daemons.start(tmp_path / "state", {})
    workload = Workload(daemon.url, project_id, scenes, rng)
    try:
        await workload.start()
        unsaved = 0
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            unsaved += await kill_and_restart(daemon, rng.uniform(0.0, 0.3), workload, store)
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        await finish(
            "kill9-local",
            workload,
            store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, {KILLS} kills with {unsaved} acknowledged edits unsaved, "
                f"{reconnects(workload)}"
            ),
        )
    finally:
        await workload.close()


async def test_mqtt_broker_restarts(
    tmp_path: Path, daemons: Daemons, mosquitto: MosquittoBroker, chaos_seed: int, chaos_report: Report
) -> None:
    """Broker restarts and a frozen broker under load: edits are kept, and changes reach MQTT again."""
    rng = random.Random(f"{chaos_seed}/mqtt-restarts")
    store = LocalStore(tmp_path / "state")
    project_id, scenes = await store.seed(EDITORS)
    topic = f"omegaframe/v1/projects/{project_id}/changes"
    subscriber = MosquittoSub(mosquitto, topic)
    daemon = await daemons.start(tmp_path / "state", {"SYNCD_MQTT__URL": mosquitto.url})
    workload = Workload(daemon.url, project_id, scenes, rng)
    restarts = 3
    try:
        await workload.start()
        for _ in range(restarts):
            await asyncio.sleep(rng.uniform(0.4, 1.0))
            await asyncio.to_thread(mosquitto.restart)
        mosquitto.pause()
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        mosquitto.resume()
        await subscribed(mosquitto, subscriber, topic)
        # The bridge reconnects with backoff (up to 30 s after failures in a row): wait until it is
        # back, so what follows tests what it publishes, not how long its backoff happened to be.
        await wait_for(partial(bridge_connected, daemon), "the daemon's MQTT bridge to reconnect", 40.0)
        # From here on, nothing the daemon publishes may be missing: each editor's next edit must come.
        finals = [await editor.edit_once() for editor in workload.editors]
        await subscriber.wait(lambda sub: all(any(v in p for _, p in sub.messages) for v in finals))
        await finish(
            "mqtt-restarts",
            workload,
            store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, {restarts} broker restarts and a freeze, "
                f"{sum('probe' not in p for p in subscriber.payloads())} changes heard on MQTT"
            ),
        )
    finally:
        await workload.close()
        subscriber.close()


async def test_full_disk(small_disk: Path, daemons: Daemons, chaos_seed: int, chaos_report: Report) -> None:
    """A full disk fails the journal write: the daemon stops (exit 1) without acknowledging that edit.

    Once there is space again, a restart on the same state directory keeps every edit acknowledged.
    The reserve that holds edits on a nearly full disk is off here: the journal must fail for this.
    """
    rng = random.Random(f"{chaos_seed}/full-disk")
    state = small_disk / "state"
    store = LocalStore(state)
    project_id, scenes = await store.seed(EDITORS)
    daemon = await daemons.start(
        state, {"SYNCD_DAEMON__SHUTDOWN_TIMEOUT": "1", "SYNCD_DAEMON__EDIT_RESERVE": "0"}
    )
    workload = Workload(daemon.url, project_id, scenes, rng, padding=200)
    try:
        await workload.start()
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        filler = small_disk / "filler"
        await asyncio.to_thread(fill, filler)
        code = await daemon.exit_code(timeout=20)
        assert code == 1, daemon.stderr
        assert "the outbox could not be written" in daemon.stderr
        refusals = [e for editor in workload.editors for e in editor.client.errors if e.code == "internal"]
        assert refusals, "no editor was told that its edit could not be stored"
        filler.unlink()
        # Every edit acknowledged so far must be in the journal or in the store, since nothing else
        # survives the daemon: an ack given for a failed journal write would show here.
        journal, saved = await asyncio.to_thread(store.durable)
        acked = {(e.client.client_id, mid): f"{e.name}.{mid}" for e in workload.editors for mid in e.acked}
        unbacked = [name for (c, m), name in acked.items() if (c, m) not in journal and m > saved.get(c, -1)]
        assert not unbacked, f"acknowledged, but not stored when the daemon stopped: {unbacked}"
        await daemon.restart()
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        await finish(
            "full-disk",
            workload,
            store,
            chaos_report,
            lambda: (
                f"seed {chaos_seed}, exit code {code} with {len(acked)} acknowledged edits all stored, "
                f"{len(refusals)} refused as unstorable"
            ),
        )
    finally:
        await workload.close()


async def test_nearly_full_disk_holds_edits(
    small_disk: Path, daemons: Daemons, chaos_seed: int, chaos_report: Report
) -> None:
    """With less than ``daemon.edit_reserve`` free, edits wait in their editors and the daemon stays up;
    once there is room they go on, and every acknowledged edit is stored once."""
    rng = random.Random(f"{chaos_seed}/nearly-full-disk")
    state = small_disk / "state"
    store = LocalStore(state)
    project_id, scenes = await store.seed(EDITORS)
    reserve = 1536 * 1024
    daemon = await daemons.start(state, {"SYNCD_DAEMON__EDIT_RESERVE": str(reserve)})
    assert daemon.proc is not None
    workload = Workload(daemon.url, project_id, scenes, rng, padding=200)
    try:
        await workload.start()
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        filler = small_disk / "filler"
        # A megabyte left: the edits of the second before the daemon looks still fit in the journal.
        await asyncio.to_thread(fill, filler, 1024 * 1024)
        await wait_for(lambda: bool(told(workload)), "no editor was told that its edits wait", timeout=10)
        await asyncio.sleep(0.5)  # the acks of commits that were under way
        held = workload.acknowledged()
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        assert daemon.proc.poll() is None, daemon.stderr
        assert workload.acknowledged() == held, "an edit was acknowledged on a nearly full disk"
        filler.unlink()
        await finish(
            "nearly-full-disk",
            workload,
            store,
            chaos_report,
            lambda: f"seed {chaos_seed}, the daemon up throughout; {len(told(workload))} editors told",
        )
    finally:
        await workload.close()


def told(workload: Workload) -> list[str]:
    """What the editors were told about edits that wait (one ``unavailable`` each, mid null)."""
    return [e.message for ed in workload.editors for e in ed.client.errors if e.code == "unavailable"]


async def subscribed(broker: MosquittoBroker, subscriber: MosquittoSub, topic: str) -> None:
    """Wait until the subscriber hears the topic again (it reconnects about a second after an outage)."""
    for probe in range(1, 100):
        await asyncio.to_thread(broker.publish, topic, json.dumps({"probe": probe}))
        try:
            await subscriber.wait(partial(heard, probe), 0.5)
        except AssertionError:
            continue
        return
    raise AssertionError(f"mosquitto_sub never heard {topic} again:\n{subscriber.connection_log()}")


async def bridge_connected(daemon: DaemonProcess) -> bool:
    """Whether the daemon's /metrics says its MQTT bridge is connected."""
    metrics = (await daemon.get("/metrics")).decode()
    return "\nsyncd_mqtt_connected 1.0" in metrics


def heard(probe: int, subscriber: MosquittoSub) -> bool:
    """Whether the subscriber received the probe message numbered ``probe``."""
    return any(payload.get("probe") == probe for payload in subscriber.payloads())
