"""Metrics: every gauge reads the daemon when scraped, and the exposition parses as Prometheus text."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.metrics import Metrics


@dataclass
class FakeEngine:
    """The engine as the gauges see it."""

    projects: tuple[str, ...] = ()
    pending: int = 0

    def open_projects(self) -> tuple[str, ...]:
        return self.projects

    def pending_count(self) -> int:
        return self.pending


@dataclass
class FakeDaemon:
    """A daemon whose readings the test sets by hand."""

    engine: FakeEngine = field(default_factory=FakeEngine)
    editor_count: int = 0
    mqtt_connected: bool | None = None
    realtime_connected: bool | None = None
    depth: int = 0
    oldest: float = 0.0
    ready: bool = True
    free: float = 0.0
    waiting: int = 0

    def state_dir_free_bytes(self) -> float:
        return self.free

    def edits_waiting_for_room(self) -> int:
        return self.waiting

    def outbox_depth(self) -> int:
        return self.depth

    def pending_oldest_age(self) -> float:
        return self.oldest

    def readiness(self) -> tuple[bool, str]:
        return self.ready, "why"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gauges_read_the_daemon_at_scrape_time() -> None:
    """Gauges report what the daemon holds when scraped, not when the metrics were built."""
    daemon = FakeDaemon()
    metrics = Metrics(daemon)
    daemon.engine.projects = ("p1", "p2")
    daemon.engine.pending = 7
    daemon.editor_count = 3
    daemon.depth = 5
    daemon.oldest = 2.5
    daemon.ready = False
    daemon.free = 123_456_789.0
    daemon.waiting = 12
    got = samples(metrics)
    assert got[("syncd_projects_open", ())] == 2
    assert got[("syncd_pending_edits", ())] == 7
    assert got[("syncd_editors_connected", ())] == 3
    assert got[("syncd_outbox_depth", ())] == 5
    assert got[("syncd_pending_oldest_seconds", ())] == 2.5
    assert got[("syncd_backend_ready", ())] == 0
    assert got[("syncd_state_dir_free_bytes", ())] == 123_456_789
    assert got[("syncd_edits_waiting_for_room", ())] == 12


@pytest.mark.parametrize(("state", "expected"), [(None, -1.0), (False, 0.0), (True, 1.0)])
def test_connection_states_are_one_zero_or_minus_one_when_off(state: bool | None, expected: float) -> None:
    """Realtime and MQTT state read 1 connected, 0 disconnected, -1 not configured."""
    got = samples(Metrics(FakeDaemon(mqtt_connected=state, realtime_connected=state)))
    assert got[("syncd_mqtt_connected", ())] == expected
    assert got[("syncd_realtime_connected", ())] == expected


def test_counters_and_histogram_move_when_the_daemon_works() -> None:
    """Counters count up and the flush histogram records each observation."""
    metrics = Metrics(FakeDaemon())
    metrics.mutations.inc(3)
    metrics.changes_in.labels("editor").inc(2)
    metrics.changes_in.labels("db").inc()
    metrics.changes_out.inc(4)
    metrics.flush_seconds.observe(0.02)
    metrics.flush_failures.labels("yes").inc()
    got = samples(metrics)
    assert got[("syncd_mutations_total", ())] == 3
    assert got[("syncd_changes_total", (("origin", "editor"),))] == 2
    assert got[("syncd_changes_total", (("origin", "db"),))] == 1
    assert got[("syncd_change_frames_sent_total", ())] == 4
    assert got[("syncd_flush_seconds_count", ())] == 1
    assert got[("syncd_flush_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("syncd_flush_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[("syncd_flush_failures_total", (("retryable", "yes"),))] == 1


def test_each_instance_has_its_own_registry() -> None:
    """Two daemons in one process do not share (or clash on) their series."""
    first, second = Metrics(FakeDaemon()), Metrics(FakeDaemon())
    first.mutations.inc()
    assert samples(first)[("syncd_mutations_total", ())] == 1
    assert samples(second)[("syncd_mutations_total", ())] == 0


def test_process_metrics_and_start_time_are_exported() -> None:
    """The exposition includes process memory and the daemon's start time."""
    got = samples(Metrics(FakeDaemon()))
    assert got[("process_resident_memory_bytes", ())] > 0
    assert got[("syncd_start_time_seconds", ())] > 1_600_000_000


def test_a_label_value_is_looked_up_once() -> None:
    """The counter by origin hands out one child per label value, and counts through it."""
    metrics = Metrics(FakeDaemon())
    editor = metrics.changes_in.labels("editor")
    assert metrics.changes_in.labels("editor") is editor
    assert metrics.changes_in.labels("db") is not editor
    editor.inc()
    metrics.changes_in.labels("editor").inc()
    assert samples(metrics)[("syncd_changes_total", (("origin", "editor"),))] == 2
