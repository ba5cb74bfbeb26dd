"""The official supabase-js client (Node 20, ``ws`` as the Realtime transport) against the stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

import pytest
from client_support import REPO_ROOT, UserFactory

from localsupabase.app import LocalSupabase

pytestmark = pytest.mark.integration

JS_DIR = REPO_ROOT / "tests" / "js"
RUN_TIMEOUT = 60.0


def _node() -> str:
    """Return the path of Node.js, failing the test (not skipping it) when the JS toolchain is missing."""
    node = shutil.which("node")
    assert node is not None, "Node.js 20 or newer is required on PATH for the supabase-js round trip"
    installed = JS_DIR / "node_modules" / "@supabase" / "supabase-js" / "package.json"
    assert installed.is_file(), f"run `npm ci` in {JS_DIR} first (the CI script does)"
    return node


async def test_supabase_js_reads_rest_and_receives_postgres_changes(
    local_supabase: LocalSupabase, new_user: UserFactory
) -> None:
    """supabase-js selects through RLS over REST and gets its own INSERT back as a postgres_changes event."""
    node = _node()
    alice = await new_user()
    anonymous_id = await local_supabase.pool.fetchval(
        "insert into public.projects (title) values ('anonymous') returning id::text"
    )
    await local_supabase.pool.execute(
        "insert into public.projects (title, user_id) values ('alice''s', $1)", alice
    )
    env = {
        **os.environ,
        "SUPABASE_URL": local_supabase.url,
        "SUPABASE_ANON_KEY": local_supabase.anon_key,
        "ROUNDTRIP_TIMEOUT_MS": str(int((RUN_TIMEOUT - 10) * 1000)),
    }

    process = await asyncio.create_subprocess_exec(
        node,
        "roundtrip.mjs",
        cwd=JS_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = stdout.decode(errors="replace")
    assert process.returncode == 0, f"{output}\n{stderr.decode(errors='replace')}"
    events: dict[str, dict[str, Any]] = {}
    statuses: list[str] = []
    for line in output.splitlines():
        message = json.loads(line)
        events[message["event"]] = message
        if message["event"] == "status":
            statuses.append(message["status"])
    assert events["select"]["rows"] == [{"id": anonymous_id, "title": "anonymous"}]
    assert statuses[0] == "SUBSCRIBED"
    inserted = events["insert"]["row"]
    change = events["change"]
    assert (change["eventType"], change["schema"], change["table"]) == ("INSERT", "public", "projects")
    assert change["new"]["id"] == inserted["id"]
    assert change["new"]["title"] == inserted["title"]
    assert change["new"]["user_id"] is None
    assert change["errors"] is None
    assert change["commit_timestamp"].endswith("Z")
    assert "done" in events
