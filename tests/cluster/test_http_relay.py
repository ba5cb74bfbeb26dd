"""HTTP calls on any instance: run by the project's owner, or by the instance that takes a free project.

Two instances in cluster mode against the Supabase stand-in. The renderer's calls (the service key)
reach the instance that does not own the project; they must see and change the owner's live state
(unsaved edits included), get the owner's answers and errors, and keep working when the owner dies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from syncd.client import EditorClient
from tests.cluster.scenario import TTL, start_instances
from tests.supabase_mode.conftest import SUPABASE_PY_DEPRECATIONS, Stack
from tests.support.daemon import DaemonProcess
from tests.support.nats import NatsCluster
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that presents the service key, as the renderer does."""
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        yield client


def took_it(daemon: DaemonProcess, project_id: str) -> bool:
    """Whether the instance logged taking the project."""
    return f"took project {project_id}" in daemon.stderr


async def test_calls_on_the_other_instance_see_and_change_the_owners_live_state(
    stack: Stack, nats_cluster: NatsCluster, http: httpx.AsyncClient
) -> None:
    """Read, write and a refusal through b, for a project a owns: a's answers, a's editors see the writes."""
    daemons = await start_instances(stack, nats_cluster, names=("a", "b"))
    a, b = daemons["a"], daemons["b"]
    project_id, (scene_id,) = await stack.create_project(scenes=1)
    editor = EditorClient(a.url, project_id, request_timeout=10)
    await editor.connect()
    assert took_it(a, project_id)
    ack = await editor.patch("scenes", scene_id, {"heading": "not saved yet"})

    loaded = await http.get(f"{b.http}/v1/projects/{project_id}")
    assert loaded.status_code == 200, loaded.text
    view: dict[str, Any] = loaded.json()
    assert [s["heading"] for s in view["scenes"]] == ["not saved yet"]  # the owner's unsaved edit
    # At least the owner's edit; its save's change may come before the read or after it.
    assert view["seq"] >= ack.seq

    changed = await http.patch(f"{b.http}/v1/projects/{project_id}", json={"title": "Relayed"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["project"]["title"] == "Relayed"
    await editor.wait_seq(changed.json()["seq"])
    assert editor.view.project is not None
    assert editor.view.project["title"] == "Relayed"

    clip = await http.post(
        f"{b.http}/v1/projects/{project_id}/clips?save=now",
        json={"scene_id": scene_id, "provider": "pika", "prompt": "x"},
    )
    assert clip.status_code == 201, clip.text
    clip_id = clip.json()["id"]
    await wait_for(lambda: clip_id in editor.view.clips, lambda: f"clip {clip_id} at the editor", 5)
    saved = await stack.pool.fetchval("select count(*) from public.clips where id = $1::uuid", clip_id)
    assert saved == 1  # ?save=now: in the database before the answer

    refused = await http.post(f"{b.http}/v1/projects/{project_id}/clips", json=[1, 2])
    assert refused.status_code == 400
    assert refused.json() == {"error": "bad_request", "message": "the body must be a JSON object"}
    bad_save = await http.patch(f"{b.http}/v1/projects/{project_id}?save=later", json={"title": "x"})
    assert bad_save.status_code == 400
    assert "save" in bad_save.json()["message"]

    # Calls with no live state (an export here) are served where they arrive; the owner's editors
    # hear of the row through Realtime, as of any other writer's.
    export = await http.post(f"{b.http}/v1/projects/{project_id}/exports", json={})
    assert export.status_code == 201, export.text
    export_id = export.json()["id"]
    await wait_for(
        lambda: export_id in editor.view.sides.get("exports", {}),
        lambda: f"export {export_id} at the editor",
        10,
    )

    unknown = "00000000-0000-4000-8000-00000000dead"
    missing = await http.get(f"{b.http}/v1/projects/{unknown}")
    assert missing.status_code == 404
    assert not took_it(b, project_id)
    assert not took_it(b, unknown)
    await editor.close()


async def test_a_free_project_is_taken_by_the_instance_called_and_an_owner_killed_is_replaced(
    stack: Stack, nats_cluster: NatsCluster, http: httpx.AsyncClient
) -> None:
    """Nobody owns it: b takes it for the call. The owner killed: the next call waits for a takeover."""
    daemons = await start_instances(stack, nats_cluster, names=("a", "b"))
    a, b = daemons["a"], daemons["b"]

    free, _ = await stack.create_project(scenes=0)
    first = await http.patch(f"{b.http}/v1/projects/{free}", json={"title": "Taken by b"})
    assert first.status_code == 200, first.text
    assert took_it(b, free)
    assert not took_it(a, free)
    seen = await http.get(f"{a.http}/v1/projects/{free}")  # a relays to b, which holds it now
    assert seen.status_code == 200
    assert seen.json()["project"]["title"] == "Taken by b"
    assert not took_it(a, free)

    owned, _ = await stack.create_project(scenes=0)
    editor = EditorClient(a.url, owned, request_timeout=10)
    await editor.connect()
    await editor.patch("projects", owned, {"title": "Edited on a"})
    a.kill()
    killed = time.monotonic()
    after = await http.patch(f"{b.http}/v1/projects/{owned}?save=now", json={"script": "after the kill"})
    waited = time.monotonic() - killed
    assert after.status_code == 200, after.text
    assert after.json()["project"]["title"] == "Edited on a"  # a's acknowledged edit, from the journal
    assert after.json()["saved"] is True
    assert took_it(b, owned)
    row = await stack.pool.fetchrow("select title, script from public.projects where id = $1::uuid", owned)
    assert row is not None
    assert (row["title"], row["script"]) == ("Edited on a", "after the kill")
    print(f"call answered {waited:.2f} s after the owner was killed (TTL {TTL} s)")
    await editor.close()
