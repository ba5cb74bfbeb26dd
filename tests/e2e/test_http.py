"""Health, readiness and metrics over HTTP on the editors' port."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request

from tests.e2e.conftest import WAIT
from tests.support.daemon import DaemonProcess


def _get(daemon: DaemonProcess, path: str) -> tuple[int, str, bytes]:
    """GET a path of the daemon's port; return the status, the content type and the body."""
    url = f"http://127.0.0.1:{daemon.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


async def test_healthz_answers_200(shared_daemon: DaemonProcess) -> None:
    """/healthz answers 200 while the process runs."""
    status, _, _ = await asyncio.to_thread(_get, shared_daemon, "/healthz")
    assert status == 200


async def test_readyz_answers_200_with_a_json_reason(shared_daemon: DaemonProcess) -> None:
    """/readyz answers 200 and a JSON body once the embedded store is open."""
    status, content_type, body = await asyncio.to_thread(_get, shared_daemon, "/readyz")
    assert status == 200
    assert content_type == "application/json"
    answer = json.loads(body)
    assert answer["ready"] is True
    assert answer["reason"]


async def test_metrics_answers_prometheus_text(shared_daemon: DaemonProcess) -> None:
    """/metrics answers 200 with the Prometheus text format, the daemon's own series included."""
    status, content_type, body = await asyncio.to_thread(_get, shared_daemon, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert "# TYPE syncd_editors_connected gauge" in text
    assert "syncd_backend_ready 1.0" in text
    # The room left for the outbox, to alert on before edits wait for room.
    free = next(
        float(line.split()[1]) for line in text.splitlines() if line.startswith("syncd_state_dir_free_bytes ")
    )
    assert abs(free - shutil.disk_usage(shared_daemon.state_dir).free) < 256 * 2**20


async def test_an_unknown_path_answers_404(shared_daemon: DaemonProcess) -> None:
    """A path the daemon does not serve answers 404."""
    status, _, _ = await asyncio.to_thread(_get, shared_daemon, "/v1/nothing-here")
    assert status == 404
