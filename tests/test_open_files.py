"""Open files: each editor's connection holds one, and past the soft limit (1024 by default, under
systemd too) connections failed before the daemon could read them, with nothing in its log."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from syncd.projects import DEMO_PROJECT_ID
from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit(1) (util-linux)")

EDITORS = 200


async def joined(url: str) -> ClientConnection:
    """An editor of the demo project, once its snapshot came."""
    ws = await connect(url)
    hello = {"type": "hello", "protocol": 1, "project_id": DEMO_PROJECT_ID, "client_id": str(uuid.uuid4())}
    await ws.send(json.dumps(hello))
    async with asyncio.timeout(10):
        while json.loads(await ws.recv())["type"] != "snapshot":
            pass
    return ws


async def test_the_daemon_raises_a_low_soft_limit_and_serves_more_editors_than_it(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "state", wrapper=("prlimit", "--nofile=128:4096", "--")).start()
    try:
        editors = await asyncio.gather(*(joined(daemon.url) for _ in range(EDITORS)), return_exceptions=True)
        failed = [repr(e) for e in editors if isinstance(e, BaseException)]
        assert not failed, f"{len(failed)} of {EDITORS} editors could not join, e.g. {failed[0]}"
        for ws in editors:
            assert isinstance(ws, ClientConnection)
            await ws.close()
    finally:
        daemon.stop()
    assert "open files: 4096 (raised from 128)" in daemon.stderr


def test_a_low_hard_limit_is_named_in_the_log_with_how_to_raise_it(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "state", wrapper=("prlimit", "--nofile=256:256", "--")).start()
    daemon.stop()
    assert "open files: at most 256, so about 224 editors at once" in daemon.stderr
    assert "LimitNOFILE=" in daemon.stderr
    assert "open files: 256\n" in daemon.stderr
