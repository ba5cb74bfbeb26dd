"""Cluster mode while NATS is away: a quiet log, and a stop request that ends the wait."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from syncd.cluster.connection import ErrorLog
from tests.support.daemon import syncd_command
from tests.support.env import clean_environ
from tests.support.ports import free_port

REFUSED = "[Errno 111] Connection refused"


def test_the_same_error_is_logged_once_then_once_per_interval_with_its_count() -> None:
    errors = ErrorLog(every=30.0)
    seen = [errors.line(REFUSED, now) for now in (0.0, 0.25, 0.5, 29.75, 30.0, 30.25)]
    assert seen == [
        REFUSED,
        None,
        None,
        None,
        f"{REFUSED} (again 4 times in the last 30 s)",
        None,
    ]


def test_another_error_or_a_reconnection_is_news_at_once() -> None:
    errors = ErrorLog(every=30.0)
    assert errors.line(REFUSED, 0.0) == REFUSED
    assert errors.line("nats: timeout", 1.0) == "nats: timeout"
    assert errors.line("nats: timeout", 2.0) is None
    errors.clear()
    assert errors.line("nats: timeout", 3.0) == "nats: timeout"


@pytest.mark.integration
def test_sigterm_ends_a_start_that_waits_for_nats(tmp_path: Path) -> None:
    """No NATS server answers: the daemon waits for one, says so once, and a SIGTERM ends the wait."""
    env = {
        **clean_environ(),
        # Cluster mode is Supabase mode; nothing answers there either, which start-up does not wait for.
        "SUPABASE_URL": f"http://127.0.0.1:{free_port()}",
        "SUPABASE_SERVICE_KEY": "sb_secret_unused",
        "SYNCD_CLUSTER__ENABLED": "true",
        "SYNCD_CLUSTER__NATS_URLS": f"nats://127.0.0.1:{free_port()}",
    }
    command = [*syncd_command(tmp_path / "state", "run"), "--port", "0"]
    with subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if f"NATS: {REFUSED}" in line:
                break
        # Long enough for six attempts: the log must not get a line for each.
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            proc.kill()  # still waiting: the test fails here, not in the exit that waits for it
        lines += proc.stderr.readlines()
    log = "".join(lines)
    assert code == 0, log
    assert "start-up waits until one server answers" in log
    assert log.count(f"NATS: {REFUSED}") == 1, log
    assert "stopping before start-up finished" in log
