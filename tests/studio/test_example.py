"""The renderer example of docs/studio.md, run as it is written, against ``syncd run`` in local mode."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx

from syncd.client import EditorClient
from tests.support.daemon import FAST_SAVES, DaemonProcess, syncd_command
from tests.support.env import clean_environ
from tests.support.waiting import wait_for

WAIT = 10.0
DOC = Path(__file__).resolve().parents[2] / "docs" / "studio.md"


def renderer_example() -> str:
    """The Python block between the renderer-example markers of docs/studio.md."""
    text = DOC.read_text()
    found = re.search(
        r"<!-- renderer-example -->\s*```python\n(.*?)```\s*<!-- /renderer-example -->", text, re.S
    )
    assert found, "docs/studio.md has no renderer example"
    return found.group(1)


def run_renderer(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The example as a process of its own, configured from the environment only."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_environ(), **env},
        check=False,
    )


def service_key_of(state_dir: Path) -> str:
    """What ``syncd service-key`` prints for this state directory."""
    command = syncd_command(state_dir, "service-key")
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


async def test_the_documented_renderer_runs_against_syncd_run(tmp_path: Path) -> None:
    """Upload and record a clip with the doc's code: the editor gets it, the bytes come back signed."""
    daemon = DaemonProcess(tmp_path / "state", env=FAST_SAVES)
    await asyncio.to_thread(daemon.start)
    try:
        key = (await asyncio.to_thread(service_key_of, daemon.state_dir)).strip()
        async with EditorClient(daemon.url, daemon.project_id, request_timeout=WAIT) as editor:
            scene_id = editor.view.ordered("scenes")[0]["id"]
            script = tmp_path / "renderer.py"
            script.write_text(renderer_example())
            clip_file = tmp_path / "clip.mp4"
            clip_file.write_bytes(b"\x00\x00\x00\x18ftypmp42 rendered")
            env = {"SYNCD_URL": daemon.http, "SYNCD_SERVICE_KEY": key}
            done = await asyncio.to_thread(
                run_renderer, script, env, daemon.project_id, scene_id, str(clip_file)
            )
            assert done.returncode == 0, done.stderr
            clip_id, file_url = done.stdout.split()
            await wait_for(lambda: clip_id in editor.view.clips, "the editor to get the clip", WAIT)
            assert editor.view.clips[clip_id]["file_url"] == file_url
            assert editor.view.clips[clip_id]["order_index"] == len(editor.view.clips) - 1
            async with httpx.AsyncClient(timeout=WAIT) as http:
                assert (await http.get(file_url)).content == clip_file.read_bytes()
                assert (await http.get(file_url.split("?")[0])).status_code == 401
        unconfigured = await asyncio.to_thread(
            run_renderer, script, {}, daemon.project_id, scene_id, str(clip_file)
        )
        assert unconfigured.returncode == 1
        assert "SYNCD_SERVICE_KEY" in unconfigured.stderr.strip().splitlines()[-1]
    finally:
        await asyncio.to_thread(daemon.stop)
