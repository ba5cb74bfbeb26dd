"""More rows than one page of PostgREST: a read answers at most ``max_rows`` rows (1000 on a hosted
project and in supabase/config.toml), silently, so every read that may meet more pages."""

from __future__ import annotations

import httpx
import pytest

from syncd.studio import connect
from tests.supabase_mode.conftest import WAIT, Stack

pytestmark = pytest.mark.integration

SCENES, CLIPS = 1_250, 1_100


async def test_a_project_of_more_rows_than_one_page_is_read_whole(stack: Stack) -> None:
    """The daemon showed its editors the first 1000 scenes and clips of such a project (a save made
    from that view could not know of the others), and the library read as little."""
    project_id, _ = await stack.create_project("Long film", scenes=SCENES)
    renderer = await stack.renderer()
    clips = [{"project_id": project_id, "order_index": i, "prompt": f"shot {i}"} for i in range(CLIPS)]
    await renderer.table("clips").insert(clips).execute()
    daemon = await stack.start_daemon()
    await stack.wait_ready(daemon)
    editor = await stack.editor(daemon, project_id)
    assert (len(editor.view.scenes), len(editor.view.clips)) == (SCENES, CLIPS)
    settings = {"SUPABASE_URL": stack.supabase.url, "SUPABASE_SERVICE_KEY": stack.supabase.service_key}
    async with connect(settings) as lib:
        loaded = await lib.load_project(project_id)
    assert [s["scene_index"] for s in loaded["scenes"]] == list(range(SCENES))
    assert [c["order_index"] for c in loaded["clips"]] == list(range(CLIPS))


async def test_more_projects_than_one_page_are_all_listed(stack: Stack) -> None:
    """A studio a year on has more than 1000 projects: the list stopped at 1000, without a word."""
    renderer = await stack.renderer()
    await renderer.table("projects").insert([{"title": f"Trial {n}"} for n in range(1_050)]).execute()
    daemon = await stack.start_daemon()
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=WAIT) as http:
        listed = (await http.get("/v1/projects")).json()
    assert len(listed) >= 1_050
