"""``python -m tests.support.localsupabase``: the stand-in run by hand, as a separate process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import default_base_dir

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0
SHUTDOWN_TIMEOUT = 30.0


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A fresh temporary folder that the ``postgres`` user may enter, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="localsupabase-main-"))
    # The cluster's folder is made inside it and handed to the postgres user, who must reach it.
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_module_serves_until_sigterm_then_cleans_up(private_tmp: Path) -> None:
    """It prints one JSON line with working keys, serves the seed, exits 0 on SIGTERM and leaves no files."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["TMPDIR"] = str(private_tmp)
    # The cluster goes to /dev/shm when it has room, else to TMPDIR; watch both for what the process makes.
    watched = [private_tmp] + [d for d in [default_base_dir()] if d is not None]
    before = {folder / name for folder in watched for name in os.listdir(folder)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.localsupabase",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        info = json.loads(line)
        async with httpx.AsyncClient(base_url=info["url"], timeout=10) as http:
            response = await http.get(
                "/rest/v1/projects",
                params={"select": "id,title"},
                headers={"apikey": info["service_key"], "Authorization": f"Bearer {info['service_key']}"},
            )
        made = {folder / name for folder in watched for name in os.listdir(folder)} - before
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), SHUTDOWN_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert set(info) == {"url", "anon_key", "service_key", "jwt_secret", "db_url"}
    assert info["url"].startswith("http://127.0.0.1:")
    assert info["db_url"].startswith("postgresql://postgres@127.0.0.1:")
    assert response.status_code == 200
    assert {"id": "0f000000-0000-4000-8000-000000000001", "title": "Demo: The Lighthouse"} in response.json()
    assert {path.name.split("-")[0] for path in made} >= {"syncd", "localsupabase"}
    assert process.returncode == 0, stderr.decode(errors="replace")
    assert [path for path in made if path.exists()] == []
    assert os.listdir(private_tmp) == []
