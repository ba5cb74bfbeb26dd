"""Prometheus metrics of the daemon, served at ``/metrics``.

Counters move as the daemon works; gauges are read from the daemon when scraped, so they cost
nothing in between. Rates ("changes per second in and out") are ``rate()`` over the counters, as
Prometheus intends; the daemon exports no averages of its own.
"""

from __future__ import annotations

import time
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector


class EngineView(Protocol):
    """The part of the engine that the gauges read."""

    def open_projects(self) -> tuple[str, ...]:
        """The projects open or loading."""

    def pending_count(self) -> int:
        """Accepted edits not yet known to be in the database."""


class MetricsSource(Protocol):
    """What the gauges read from the daemon when scraped."""

    @property
    def engine(self) -> EngineView:
        """The sans-I/O engine."""

    @property
    def editor_count(self) -> int:
        """Connected editors."""

    @property
    def mqtt_connected(self) -> bool | None:
        """MQTT bridge state; None when MQTT is off."""

    @property
    def realtime_connected(self) -> bool | None:
        """Realtime socket state; None in local mode."""

    def outbox_depth(self) -> int:
        """Entries in the durable journal."""

    def pending_oldest_age(self) -> float:
        """Seconds since the oldest unsaved edit arrived."""

    def readiness(self) -> tuple[bool, str]:
        """Whether the daemon is ready, and why (not)."""

    def state_dir_free_bytes(self) -> float:
        """Free bytes on the state directory's file system; NaN when it cannot be read."""

    def edits_waiting_for_room(self) -> int:
        """Editors' edits held until the state directory has room (syncd.room)."""


def _state(value: bool | None) -> float:
    """A connection state as a gauge value: 1 up, 0 down, -1 not configured."""
    return -1.0 if value is None else float(value)


class LabelledCounter:
    """A counter with one label whose children are looked up once per label value, not once per count.

    prometheus_client's ``labels()`` takes a lock and builds a key on every call; the daemon counts a
    change per edit, with a handful of label values in all.

    Args:
        counter: the labelled counter.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[str, Counter] = {}

    def labels(self, value: str) -> Counter:
        """The child counter of this label value."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._counter.labels(value)
        return child


class Metrics:
    """The daemon's metrics, in a registry of their own (several daemons may share a process in tests).

    Args:
        daemon: what the gauges read.
    """

    def __init__(self, daemon: MetricsSource) -> None:
        self._daemon = daemon
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        self.mutations = Counter("syncd_mutations_total", "Editor mutations received", registry=r)
        self.changes_in = LabelledCounter(
            Counter(
                "syncd_changes_total", "Changes applied to the live view, by origin", ["origin"], registry=r
            )
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
        _gauges(daemon, r)
        Gauge("syncd_start_time_seconds", "Unix time the daemon started", registry=r).set(time.time())

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def _gauges(daemon: MetricsSource, r: CollectorRegistry) -> None:
    """The gauges, each read from the daemon when scraped."""
    Gauge("syncd_editors_connected", "Editors connected", registry=r).set_function(
        lambda: daemon.editor_count
    )
    Gauge("syncd_projects_open", "Projects open or loading", registry=r).set_function(
        lambda: len(daemon.engine.open_projects())
    )
    Gauge("syncd_pending_edits", "Accepted edits not yet in the database", registry=r).set_function(
        lambda: daemon.engine.pending_count()
    )
    Gauge(
        "syncd_pending_oldest_seconds",
        "Age of the oldest edit not yet in the database, 0 when everything is saved",
        registry=r,
    ).set_function(lambda: daemon.pending_oldest_age())
    Gauge("syncd_outbox_depth", "Entries in the durable journal", registry=r).set_function(
        lambda: daemon.outbox_depth()
    )
    Gauge("syncd_backend_ready", "1 when the backend is connected and subscribed", registry=r).set_function(
        lambda: 1.0 if daemon.readiness()[0] else 0.0
    )
    Gauge(
        "syncd_realtime_connected",
        "1 when the Supabase Realtime socket is connected, -1 in local mode",
        registry=r,
    ).set_function(lambda: _state(daemon.realtime_connected))
    Gauge(
        "syncd_mqtt_connected", "1 when the MQTT bridge is connected, -1 when MQTT is off", registry=r
    ).set_function(lambda: _state(daemon.mqtt_connected))
    Gauge(
        "syncd_state_dir_free_bytes",
        "Free bytes for the outbox on the state directory's file system; "
        "below daemon.edit_reserve, edits wait",
        registry=r,
    ).set_function(lambda: daemon.state_dir_free_bytes())
    Gauge(
        "syncd_edits_waiting_for_room",
        "Editors' edits held until the state directory's file system has room",
        registry=r,
    ).set_function(lambda: daemon.edits_waiting_for_room())
