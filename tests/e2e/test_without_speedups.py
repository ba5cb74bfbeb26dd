"""A daemon on a machine where orjson and uvloop cannot be loaded: it says so once, and serves editors."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.client import EditorClient
from tests.e2e.conftest import DaemonFactory

BLOCKER = 'raise ImportError("not installed on this machine")\n'


async def test_daemon_runs_on_the_standard_library_and_asyncio(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """With both modules unimportable, the start-up log names the fallbacks, and an edit reaches the
    other editor and is acknowledged."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("orjson", "uvloop"):
        (blocked / f"{name}.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(blocked), os.environ.get("PYTHONPATH", "")) if p)
    daemon = start_daemon({"PYTHONPATH": path})
    await daemon.wait_log("uvloop is not available")
    await daemon.wait_log("orjson is not available")
    async with (
        EditorClient(daemon.url, daemon.project_id) as alice,
        EditorClient(daemon.url, daemon.project_id) as bob,
    ):
        ack = await alice.patch("projects", daemon.project_id, {"title": "Fallbacks", "settings": {"n": 1.5}})
        await bob.wait_seq(ack.seq)
        assert bob.view.project is not None
        assert bob.view.project["title"] == "Fallbacks"
        assert bob.view.project["settings"] == {"n": 1.5}
    assert daemon.stderr.count("event loop:") == 1
