"""The ``localsupabase`` command (and ``python -m localsupabase``): the stand-in run by hand, as a process."""

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
from client_support import REPO_ROOT

from localsupabase.postgres import default_base_dir

pytestmark = pytest.mark.integration

COMMAND = Path(sys.executable).with_name("localsupabase")
"""The console script that ``pip install ./localsupabase`` puts beside the interpreter."""
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_command_serves_until_sigterm_then_cleans_up(private_tmp: Path, sig: signal.Signals) -> None:
    """It prints one JSON line with working keys, serves the seed, exits 0 on SIGTERM and leaves no files;
    so on SIGHUP, which closing its terminal sends (it left its PostgreSQL cluster behind)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["TMPDIR"] = str(private_tmp)
    # The cluster goes to /dev/shm when it has room, else to TMPDIR; watch both for what the process makes.
    watched = [private_tmp] + [d for d in [default_base_dir()] if d is not None]
    before = {folder / name for folder in watched for name in os.listdir(folder)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localsupabase",
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
        process.send_signal(sig)
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
    assert {path.name.rsplit("-", 1)[0] for path in made} >= {"localsupabase-pg", "localsupabase-storage"}
    assert process.returncode == 0, stderr.decode(errors="replace")
    assert [path for path in made if path.exists()] == []
    assert os.listdir(private_tmp) == []


async def test_module_form_and_a_missing_project_folder(tmp_path: Path) -> None:
    """``python -m localsupabase`` is the same command; without a project folder it exits 2 saying which."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localsupabase",
        "--no-seed",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), SHUTDOWN_TIMEOUT)

    assert process.returncode == 2
    assert stdout == b""
    message = stderr.decode()
    assert "usage: localsupabase" in message
    assert "Supabase project folder not found: supabase" in message
    assert "--supabase-dir" in message
    assert os.listdir(tmp_path) == []
