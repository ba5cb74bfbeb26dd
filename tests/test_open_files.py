"""Open files: each editor's connection holds one, and past the soft limit (1024 by default, under
systemd too) connections failed before the daemon could read them, with nothing in its log."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from syncd.projects import DEMO_PROJECT_ID
from tests.support.daemon import DaemonProcess
from tests.support.editor import RawEditors

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit(1) (util-linux)")

EDITORS = 200


async def test_the_daemon_raises_a_low_soft_limit_and_serves_more_editors_than_it(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "state", wrapper=("prlimit", "--nofile=128:4096", "--")).start()
    editors = RawEditors(timeout=10)

    async def joined() -> None:
        await (await editors.open(daemon.url)).join(DEMO_PROJECT_ID)

    try:
        joins = await asyncio.gather(*(joined() for _ in range(EDITORS)), return_exceptions=True)
        failed = [repr(e) for e in joins if isinstance(e, BaseException)]
        assert not failed, f"{len(failed)} of {EDITORS} editors could not join, e.g. {failed[0]}"
    finally:
        await editors.close()
        daemon.stop()
    assert "open files: 4096 (raised from 128)" in daemon.stderr


def test_a_low_hard_limit_is_named_in_the_log_with_how_to_raise_it(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "state", wrapper=("prlimit", "--nofile=256:256", "--")).start()
    daemon.stop()
    assert "open files: at most 256, so about 224 editors at once" in daemon.stderr
    assert "LimitNOFILE=" in daemon.stderr
    assert "open files: 256\n" in daemon.stderr
