"""The daemon's MQTT bridge end to end: an editor's changes reach ``mosquitto_sub``, a broker restart leaves
no gap, and a renderer's ``mosquitto_pub`` reaches the editors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import (
    LONG_QUIET,
    PREFIX,
    WAIT,
    DaemonFactory,
    RecorderFactory,
    mosquitto_pub,
)
from tests.support.daemon import DaemonProcess
from tests.support.mosquitto import MosquittoBroker, MosquittoSub
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CHANGES = f"{PREFIX}/projects/+/changes"
FIELDS = {"epoch", "seq", "table", "op", "id", "origin", "at"}
"""What every change message carries (plus ``set`` for an update, ``row`` for an insert)."""


async def _mqtt_connected(daemon: DaemonProcess) -> bool:
    families = text_string_to_metric_families((await daemon.get("/metrics")).decode())
    values = [s.value for f in families if f.name == "syncd_mqtt_connected" for s in f.samples]
    return values == [1.0]


async def _wait_mqtt_connected(daemon: DaemonProcess) -> None:
    # The bridge's state has no event a test could wait on: poll the endpoint.
    await wait_for(lambda: _mqtt_connected(daemon), "syncd_mqtt_connected to be 1", WAIT)


async def test_subscriber_gets_an_editors_changes_in_seq_order_with_the_documented_fields(
    start_daemon: DaemonFactory,
    mosquitto: MosquittoBroker,
    mqtt_subscriber: Callable[[str], MosquittoSub],
    recorder: RecorderFactory,
) -> None:
    """Each patch becomes one message on {prefix}/projects/{pid}/changes, in seq order, documented fields."""
    sub = mqtt_subscriber(CHANGES)
    await sub.wait(lambda s: len(s.subscribed_at) == 1)
    daemon = await start_daemon({**LONG_QUIET, "SYNCD_MQTT__URL": mosquitto.url})
    project_id = daemon.project_id
    editor = await recorder(daemon.url)
    snapshot = await editor.join(project_id)
    scene = snapshot["scenes"][0]["id"]
    mids = [await editor.patch("scenes", scene, {"body": f"line {i}"}) for i in range(10)]
    acks = [await editor.acked(mid) for mid in mids]

    await sub.wait(lambda s: len(s.messages) >= 10)
    assert {topic for topic, _ in sub.messages} == {f"{PREFIX}/projects/{project_id}/changes"}
    payloads = sub.payloads()
    assert [p["seq"] for p in payloads] == [a["seq"] for a in acks]
    for i, message in enumerate(payloads):
        assert message.keys() >= FIELDS, message
        assert message["epoch"] == snapshot["epoch"]
        assert (message["table"], message["op"], message["id"]) == ("scenes", "update", scene)
        assert message["set"] == {"body": f"line {i}"}
        assert message["origin"] == "editor"
        assert message["client_id"] == editor.client_id
        assert message["mid"] == mids[i]
        assert "type" not in message
        assert datetime.fromisoformat(message["at"]).tzinfo is not None


async def test_broker_restart_mid_burst_leaves_no_gap_after_the_subscriber_is_back(
    start_daemon: DaemonFactory,
    mosquitto: MosquittoBroker,
    mqtt_subscriber: Callable[[str], MosquittoSub],
    recorder: RecorderFactory,
) -> None:
    """After a broker restart mid-burst the subscriber sees every seq from its first after resubscribing."""
    # The broker keeps no sessions across its restart, and mosquitto_sub resubscribes on its own clock, so
    # what can be promised is: from the first change the subscriber sees after it is back, no seq is missing
    # up to the last edit (the bridge re-sends whatever the broker had not acknowledged), and the changes
    # it saw before the restart were in order.
    sub = mqtt_subscriber(CHANGES)
    await sub.wait(lambda s: len(s.subscribed_at) == 1)
    daemon = await start_daemon({**LONG_QUIET, "SYNCD_MQTT__URL": mosquitto.url})
    editor = await recorder(daemon.url)
    scene = (await editor.join(daemon.project_id))["scenes"][0]["id"]
    await _wait_mqtt_connected(daemon)
    count = 0
    # Edits go at most about 100 per second, well inside the gateway's per-editor rate limit (200/s).

    async def edit() -> int:
        nonlocal count
        count += 1
        return await editor.patch("scenes", scene, {"body": f"burst {count}"})

    while len(sub.messages) < 30:
        await edit()
        await asyncio.sleep(0.01)
    restart = asyncio.create_task(asyncio.to_thread(mosquitto.restart))
    while not restart.done():  # edits keep coming while the broker is down
        await edit()
        await asyncio.sleep(0.01)
    await restart
    async with asyncio.timeout(3 * WAIT):
        while len(sub.subscribed_at) < 2 or len(sub.messages) < sub.subscribed_at[1] + 20:
            await edit()
            await asyncio.sleep(0.02)
    last_ack = await editor.acked(await edit())
    await sub.wait(lambda s: max(p["seq"] for p in s.payloads()) == last_ack["seq"])

    seqs = [p["seq"] for p in sub.payloads()]
    before, after = seqs[: sub.subscribed_at[1]], seqs[sub.subscribed_at[1] :]
    assert before == sorted(before)
    seen = sorted(set(after))
    assert seen == list(range(seen[0], last_ack["seq"] + 1)), f"gap after the restart from seq {seen[0]}"
    assert "lost MQTT broker" in daemon.stderr


async def test_renderer_event_from_mosquitto_pub_reaches_the_editors(
    start_daemon: DaemonFactory, mosquitto: MosquittoBroker, recorder: RecorderFactory
) -> None:
    """A render.progress message from mosquitto_pub reaches every editor of the project as an event frame."""
    daemon = await start_daemon({**LONG_QUIET, "SYNCD_MQTT__URL": mosquitto.url})
    project_id = daemon.project_id
    editors = [await recorder(daemon.url) for _ in range(2)]
    for editor in editors:
        await editor.join(project_id)
    await _wait_mqtt_connected(daemon)
    data = {"clip_id": str(uuid.uuid4()), "progress": 0.42, "stage": "upscaling"}

    await mosquitto_pub(mosquitto, f"{PREFIX}/projects/{project_id}/events/render.progress", data)
    for editor in editors:
        await editor.wait(lambda r: bool(r.of_type("event")), "an event frame")
        assert editor.of_type("event") == [{"type": "event", "topic": "render.progress", "data": data}]
