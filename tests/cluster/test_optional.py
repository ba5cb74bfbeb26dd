"""nats-py is needed only in cluster mode: the daemon's modules do not import it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from syncd.cluster.connection import connect_nats
from syncd.errors import ClusterError


def test_the_daemon_runs_without_importing_nats() -> None:
    """Importing the command line, the supervisor, the host and the settings leaves nats unloaded."""
    code = "import sys, syncd.cli, syncd.supervisor, syncd.host, syncd.config; print('nats' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


async def test_cluster_mode_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nats-py, connecting fails with one line naming the extra to install."""
    monkeypatch.setitem(sys.modules, "nats", None)
    with pytest.raises(ClusterError, match="install syncd with the 'cluster' extra"):
        await connect_nats(["nats://127.0.0.1:4222"], "x")
