"""Prometheus metrics of the daemon, served at ``/metrics``.

Counters move as the daemon works; gauges are read from the daemon when scraped, so they cost
nothing in between.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from syncd.daemon import Daemon


class Metrics:
    """The daemon's metrics, in a registry of their own (several daemons may share a process in tests).

    Args:
        daemon: what the gauges read.
    """

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        self.mutations = Counter("syncd_mutations_total", "Editor mutations received", registry=r)
        self.changes_in = Counter(
            "syncd_changes_total", "Changes applied to the live view, by origin", ["origin"], registry=r
        )
        self.changes_out = Counter(
            "syncd_change_frames_sent_total", "Change frames queued to editors", registry=r
        )
        self.flush_seconds = Histogram(
            "syncd_flush_seconds",
            "Time one write batch took in the database",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.flush_failures = Counter(
            "syncd_flush_failures_total",
            "Write batches that failed, by whether retried soon",
            ["retryable"],
            registry=r,
        )
        Gauge("syncd_editors_connected", "Editors connected", registry=r).set_function(
            lambda: daemon.editor_count
        )
        Gauge("syncd_projects_open", "Projects open or loading", registry=r).set_function(
            lambda: len(daemon.engine.open_projects())
        )
        Gauge("syncd_pending_edits", "Accepted edits not yet in the database", registry=r).set_function(
            lambda: daemon.engine.pending_count()
        )
        Gauge("syncd_outbox_depth", "Entries in the durable journal", registry=r).set_function(
            lambda: daemon.outbox_depth()
        )
        Gauge(
            "syncd_backend_ready", "1 when the backend is connected and subscribed", registry=r
        ).set_function(lambda: 1.0 if daemon.readiness()[0] else 0.0)
        Gauge(
            "syncd_mqtt_connected", "1 when the MQTT bridge is connected, -1 when MQTT is off", registry=r
        ).set_function(lambda: -1.0 if daemon.mqtt_connected is None else float(daemon.mqtt_connected))
        Gauge("syncd_start_time_seconds", "Unix time the daemon started", registry=r).set(time.time())

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
