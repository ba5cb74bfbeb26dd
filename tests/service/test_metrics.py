"""``/metrics`` of a running daemon: Prometheus text with every metric of the issue, moving with the work."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import LONG_QUIET, WAIT, DaemonFactory, RecorderFactory
from tests.support.daemon import DaemonProcess
from tests.support.mosquitto import MosquittoBroker
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

REQUIRED = {
    "syncd_editors_connected": "gauge",
    "syncd_projects_open": "gauge",
    "syncd_mutations": "counter",
    "syncd_changes": "counter",
    "syncd_change_frames_sent": "counter",
    "syncd_pending_edits": "gauge",
    "syncd_pending_oldest_seconds": "gauge",
    "syncd_flush_seconds": "histogram",
    "syncd_flush_failures": "counter",
    "syncd_outbox_depth": "gauge",
    "syncd_realtime_connected": "gauge",
    "syncd_mqtt_connected": "gauge",
    "syncd_backend_ready": "gauge",
    "process_resident_memory_bytes": "gauge",
}
"""The issue's list: editors, projects, changes in and out, pending edits and their age, flush latency and
failures, outbox depth, Realtime and MQTT state, process memory (counter names without ``_total``)."""


async def scrape(daemon: DaemonProcess) -> tuple[dict[str, str], Samples]:
    """Parse /metrics: the type of each family, and every sample by name and labels."""
    text = (await daemon.get("/metrics")).decode()
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled counter child that does not exist yet."""
    key = (name, tuple(sorted(labels.items())))
    if labels and key not in samples:
        return 0.0
    return samples[key]


async def test_metrics_parse_and_move_as_an_editor_works(
    start_daemon: DaemonFactory, recorder: RecorderFactory, mosquitto: MosquittoBroker
) -> None:
    """/metrics parses and lists every metric; counters, pending edits and their age move with the edits."""
    daemon = await start_daemon({**LONG_QUIET, "SYNCD_MQTT__URL": mosquitto.url})
    types, before = await scrape(daemon)
    for name, kind in REQUIRED.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)}"
    assert value(before, "syncd_editors_connected") == 0
    assert value(before, "syncd_pending_edits") == 0
    assert value(before, "syncd_pending_oldest_seconds") == 0
    assert value(before, "syncd_realtime_connected") == -1  # local mode has no Realtime
    assert value(before, "process_resident_memory_bytes") > 0

    editor = await recorder(daemon.url)
    scene = (await editor.join(daemon.project_id))["scenes"][0]["id"]
    mids = [await editor.patch("scenes", scene, {"body": f"v{i}"}) for i in range(4)]
    ack = await editor.acked(mids[-1])
    _, during = await scrape(daemon)
    assert value(during, "syncd_editors_connected") == 1
    assert value(during, "syncd_projects_open") == 1
    assert value(during, "syncd_mutations_total") - value(before, "syncd_mutations_total") == 4
    changes = value(during, "syncd_changes_total", origin="editor")
    assert changes - value(before, "syncd_changes_total", origin="editor") == 4
    assert (
        value(during, "syncd_change_frames_sent_total") - value(before, "syncd_change_frames_sent_total") >= 4
    )
    assert value(during, "syncd_pending_edits") == 4
    assert value(during, "syncd_outbox_depth") == 4
    assert value(during, "syncd_pending_oldest_seconds") > 0

    scrapes: list[Samples] = []

    async def bridge_connected() -> bool:
        scrapes.append((await scrape(daemon))[1])
        return value(scrapes[-1], "syncd_mqtt_connected") == 1

    # The bridge connects in the background, after startup. The daemon's state has no event a test could
    # wait on; polling the endpoint is the honest way.
    await wait_for(bridge_connected, "syncd_mqtt_connected to be 1", WAIT)
    later = scrapes[-1]
    assert value(later, "syncd_pending_oldest_seconds") >= value(during, "syncd_pending_oldest_seconds")

    await editor.ws.send('{"type": "flush", "mid": 5}')
    await editor.acked(5)
    await editor.wait(lambda r: any(f["seq"] >= ack["seq"] for f in r.of_type("saved")), "saved")
    _, after = await scrape(daemon)
    assert value(after, "syncd_pending_edits") == 0
    assert value(after, "syncd_pending_oldest_seconds") == 0
    assert value(after, "syncd_flush_seconds_count") - value(before, "syncd_flush_seconds_count") >= 1
    assert value(after, "syncd_flush_failures_total", retryable="yes") == 0
