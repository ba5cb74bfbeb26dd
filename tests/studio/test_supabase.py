"""``syncd.studio`` and the HTTP API in Supabase mode, against the stand-in, with syncd in front of editors.

Tests marked "signed URLs" need the stand-in's ``/storage/v1/object/sign/…`` endpoint; they are skipped
while the stand-in answers that path as an upload to a bucket named ``sign``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from syncd.studio import StudioError, connect
from syncd.studio.supabase import SupabaseStudio
from tests.studio.test_example import renderer_example, run_renderer
from tests.supabase_mode.conftest import WAIT, Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def lib(stack: Stack) -> AsyncIterator[SupabaseStudio]:
    """The library in Supabase mode: the stand-in's URL and service key."""
    client = connect({"SUPABASE_URL": stack.supabase.url, "SUPABASE_SERVICE_KEY": stack.supabase.service_key})
    assert isinstance(client, SupabaseStudio)
    async with client:
        yield client


async def needs_signed_urls(stack: Stack) -> None:
    """Skip unless the stand-in signs Storage URLs."""
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}", "apikey": stack.supabase.service_key}
    async with httpx.AsyncClient(timeout=WAIT) as http:
        answer = await http.post(
            f"{stack.supabase.url}/storage/v1/object/sign/clips/projects/{uuid.uuid4()}/clips/probe.mp4",
            json={"expiresIn": 60},
            headers=headers,
        )
    if "Bucket not found" in answer.text:
        pytest.skip("the stand-in has no /storage/v1/object/sign endpoint yet")


async def test_rows_through_the_library_reach_the_editors_through_realtime(
    stack: Stack, lib: SupabaseStudio
) -> None:
    """Clips, scenes, an export's progress, an audio file: written to Supabase, seen by the editor."""
    daemon = await stack.start_daemon()
    project = await lib.create_project("Supabase film", id=str(uuid.uuid4()))
    assert (await lib.create_project("Supabase film", id=project["id"]))["id"] == project["id"]
    project_id = project["id"]
    await stack.wait_ready(daemon)
    editor = await stack.editor(daemon, project_id)
    scenes = await lib.sync_scenes(project_id, [{"heading": "One"}, {"heading": "Two"}, {"heading": "Three"}])
    one, two, three = (s["id"] for s in scenes)
    scenes = await lib.sync_scenes(project_id, [{"id": three}, {"id": one}, {"heading": "Four"}])
    assert [s["heading"] for s in scenes] == ["Three", "One", "Four"]
    first = await lib.save_clip_record(
        project_id=project_id, scene_id=one, provider="pika", file_url=None, prompt="a"
    )
    second = await lib.save_clip_record(
        project_id=project_id, scene_id=one, provider="pika", file_url=None, prompt="b"
    )
    assert (first["order_index"], second["order_index"]) == (0, 1)
    export = await lib.create_export(project_id, format="mp4")
    await lib.update_export(export["id"], status="rendering", progress=0.4)
    audio = await lib.create_audio_file(project_id, kind="music", duration=3.0)

    def caught_up() -> bool:
        view = editor.view
        return (
            [s["heading"] for s in view.ordered("scenes")] == ["Three", "One", "Four"]
            and second["id"] in view.clips
            and view.sides["exports"].get(export["id"], {}).get("progress") == 0.4
            and audio["id"] in view.sides["audio_files"]
        )

    await wait_for(
        caught_up, lambda: f"the editor to catch up: {editor.view.as_dict()} {editor.view.sides}", WAIT
    )
    assert two not in editor.view.scenes
    with pytest.raises(StudioError) as backwards:
        await lib.update_export(export["id"], status="queued")
    assert backwards.value.code == "conflict"
    order = await lib.reorder_clips(project_id, [second["id"]])
    assert [c["id"] for c in order] == [second["id"], first["id"]]
    assert (await lib.save_clip(project_id, first["id"], status="failed"))["status"] == "failed"
    await lib.delete_clip(project_id, first["id"])
    loaded = await lib.load_project(project_id)
    assert [c["id"] for c in loaded["clips"]] == [second["id"]]
    assert (await lib.update_project(project_id, title="Renamed"))["title"] == "Renamed"
    assert [a["id"] for a in await lib.list_audio_files(project_id)] == [audio["id"]]
    await lib.delete_audio_file(audio["id"])
    assert [e["status"] for e in await lib.list_exports(project_id)] == ["rendering"]


async def test_voices_and_bad_input_in_supabase_mode(stack: Stack, lib: SupabaseStudio) -> None:
    """Voices per user; refused calls name the problem and change nothing."""
    voice = await lib.create_voice(name="Narrator")
    assert (await lib.update_voice(voice["id"], name="Host"))["name"] == "Host"
    assert [v["name"] for v in await lib.list_voices()] == ["Host"]
    await lib.delete_voice(voice["id"])
    assert await lib.list_voices() == []
    project = await lib.create_project("Checks")
    pid = project["id"]
    cases = [
        (lib.upload("clips", "elsewhere/a.mp4", b"x", "video/mp4"), "bad_request"),
        (lib.upload_video_clip(str(uuid.uuid4()), None, b"x", "pika"), "not_found"),
        (lib.upload_video_clip(pid, None, b"x", "pika", content_type="text/plain"), "bad_request"),
        (lib.upload_thumbnail(pid, b"x" * (5 * 1024 * 1024 + 1)), "too_large"),
        # Storage's client reads a str as the name of a local file to upload.
        (lib.upload_video_clip(pid, None, cast(bytes, "/etc/hostname"), "pika"), "bad_request"),
        (lib.public_url("clips", f"projects/{pid}/clips/a.mp4"), "forbidden"),
        (
            lib.save_clip_record(
                project_id=str(uuid.uuid4()), scene_id=None, provider="p", file_url=None, prompt=""
            ),
            "not_found",
        ),
        (lib.sync_scenes(pid, [{"heading": 1}]), "bad_request"),
        (lib.create_project("x", id=pid), "conflict"),
    ]
    for call, code in cases:
        with pytest.raises(StudioError) as caught:
            await call
        assert caught.value.code == code, caught.value
    assert (await lib.load_project(pid))["clips"] == []
    thumb = await lib.upload_thumbnail(pid, b"png")
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(thumb)).content == b"png"
    path = thumb.split("/object/public/thumbnails/")[1]
    assert await lib.remove_file("thumbnails", path) is True
    await lib.delete_project(pid)
    with pytest.raises(StudioError) as gone:
        await lib.load_project(pid)
    assert gone.value.code == "not_found"


async def test_a_thumbnail_uploaded_through_the_daemon_is_public(stack: Stack) -> None:
    """The daemon's HTTP API in Supabase mode stores in Supabase Storage; the public URL reads it back."""
    daemon = await stack.start_daemon()
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=WAIT) as http:
        created = await http.post("/v1/projects", json={"title": "Via daemon"})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        path = f"projects/{pid}/thumbnails/t.png"
        put = await http.put(
            f"/v1/storage/thumbnails/{path}", content=b"png!", headers={"Content-Type": "image/png"}
        )
        assert put.status_code == 201, put.text
        got = await http.get(put.json()["url"])
        assert got.content == b"png!", (put.json(), got.text)
        clip = await http.post(f"/v1/projects/{pid}/clips?save=now", json={"prompt": "via daemon"})
        assert clip.status_code == 201, clip.text
        assert clip.json()["order_index"] == 0
        editor_token = await http.get("/v1/projects", headers={"Authorization": "Bearer not-a-jwt"})
        assert editor_token.status_code == 401
    rows = await stack.db_rows(pid)
    assert [c["prompt"] for c in rows["clips"].values()] == ["via daemon"]


async def test_signed_urls_through_the_library(stack: Stack, lib: SupabaseStudio) -> None:
    """Signed URLs: an uploaded clip comes back from its signed URL. Needs the stand-in's signed URLs."""
    await needs_signed_urls(stack)
    project = await lib.create_project("Signed")
    url = await lib.upload_video_clip(project["id"], None, b"clip bytes", "pika")
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(url)).content == b"clip bytes"
    path = url.split("/object/sign/clips/")[1].split("?")[0]
    again = await lib.signed_url("clips", path, 60)
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(again)).content == b"clip bytes"
        assert (await http.get(await lib.fresh_url(url))).content == b"clip bytes"
        for url, data in (
            (await lib.upload_audio(project["id"], b"ID3"), b"ID3"),
            (await lib.upload_export(project["id"], b"final"), b"final"),
        ):
            assert (await http.get(url)).content == data


async def test_the_documented_renderer_runs_in_supabase_mode(stack: Stack, tmp_path: Path) -> None:
    """The doc's renderer with SUPABASE_URL and SUPABASE_SERVICE_KEY: the editor gets the clip.

    Needs the stand-in's signed URLs.
    """
    await needs_signed_urls(stack)
    daemon = await stack.start_daemon()
    project_id, scene_ids = await stack.create_project("Renderer", scenes=1)
    await stack.wait_ready(daemon)
    editor = await stack.editor(daemon, project_id)
    script = tmp_path / "renderer.py"
    script.write_text(renderer_example())
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"rendered")
    env = {"SUPABASE_URL": stack.supabase.url, "SUPABASE_SERVICE_KEY": stack.supabase.service_key}
    done = await asyncio.to_thread(run_renderer, script, env, project_id, scene_ids[0], str(clip_file))
    assert done.returncode == 0, done.stderr
    clip_id, file_url = done.stdout.split()
    await wait_for(lambda: clip_id in editor.view.clips, "the editor to get the clip", WAIT)
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(file_url)).content == b"rendered"


async def test_the_daemons_api_in_supabase_mode_goes_through_the_engine(stack: Stack) -> None:
    """Scenes synced and an export reported through the daemon reach the editor and the database."""
    daemon = await stack.start_daemon()
    project_id, _ = await stack.create_project("Through syncd", scenes=2)
    await stack.wait_ready(daemon)
    editor = await stack.editor(daemon, project_id)
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=WAIT) as http:
        wanted = {"scenes": [{"heading": "Only"}]}
        synced = await http.put(f"/v1/projects/{project_id}/scenes?save=now", json=wanted)
        assert synced.status_code == 200, synced.text
        assert synced.json()["saved"] is True
        export = (await http.post(f"/v1/projects/{project_id}/exports", json={})).json()
        step = await http.patch(f"/v1/exports/{export['id']}", json={"status": "rendering", "progress": 0.7})
        assert step.status_code == 200, step.text
    rows = await stack.db_rows(project_id)
    assert [s["heading"] for s in rows["scenes"].values()] == ["Only"]

    def seen() -> bool:
        export_row = editor.view.sides["exports"].get(export["id"], {})
        return [s["heading"] for s in editor.view.ordered("scenes")] == ["Only"] and export_row.get(
            "progress"
        ) == 0.7

    await wait_for(seen, "the editor to see the scenes and the export", WAIT)


async def test_a_clip_uploaded_through_the_daemon_comes_back_signed(stack: Stack) -> None:
    """Signed URLs through the daemon in Supabase mode. Needs the stand-in's signed URLs."""
    await needs_signed_urls(stack)
    daemon = await stack.start_daemon()
    project_id, _ = await stack.create_project("Signed via syncd", scenes=0)
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=WAIT) as http:
        path = f"projects/{project_id}/clips/a.mp4"
        put = await http.put(
            f"/v1/storage/clips/{path}", content=b"clip", headers={"Content-Type": "video/mp4"}
        )
        assert put.status_code == 201, put.text
        assert (await http.get(put.json()["url"])).content == b"clip"
        public = await http.get(f"/v1/storage/public/clips/{path}")
        assert public.status_code == 403


async def test_a_deleted_voice_leaves_the_open_projects_through_realtime(
    stack: Stack, lib: SupabaseStudio
) -> None:
    """The database's ``on delete set null`` reaches the editors of an open project through Realtime,
    as local mode makes it reach them by reading the project again."""
    daemon = await stack.start_daemon()
    project_id, _ = await stack.create_project("Voiced", scenes=1)
    await stack.wait_ready(daemon)
    voice_id = (await lib.create_voice(name="Narrator"))["id"]
    await lib.create_audio_file(project_id, voice_id=voice_id)
    editor = await stack.editor(daemon, project_id)
    scene_id = editor.view.ordered("scenes")[0]["id"]
    await editor.wait_saved((await editor.patch("scenes", scene_id, {"voice_id": voice_id})).seq)

    def voices() -> list[object]:
        scenes = [scene["voice_id"] for scene in editor.view.ordered("scenes")]
        return scenes + [row["voice_id"] for row in editor.view.sides["audio_files"].values()]

    await wait_for(lambda: voices() == [voice_id, voice_id], lambda: f"the voice in use: {voices()}", WAIT)
    await lib.delete_voice(voice_id)
    await wait_for(lambda: voices() == [None, None], lambda: f"no voice: {voices()}", WAIT)


async def test_deleting_a_project_removes_its_files_from_storage(stack: Stack, lib: SupabaseStudio) -> None:
    """Storage keeps objects whose rows are gone: the library removes the project's files with it,
    every one under its folder (Storage lists a folder one level at a time), and no other project's."""
    doomed = (await lib.create_project("Trial"))["id"]
    kept = (await lib.create_project("Kept"))["id"]
    await lib.upload_video_clip(doomed, None, b"clip", "pika")
    await lib.upload_thumbnail(doomed, b"png")
    await lib.upload_export(doomed, b"mp4")
    await lib.upload_video_clip(kept, None, b"clip", "pika")
    await lib.delete_project(doomed)
    headers = {"Authorization": f"Bearer {stack.supabase.service_key}", "apikey": stack.supabase.service_key}

    async def listed(bucket: str, folder: str) -> list[str]:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            answer = await http.post(
                f"{stack.supabase.url}/storage/v1/object/list/{bucket}",
                json={"prefix": folder},
                headers=headers,
            )
        assert answer.status_code == 200, answer.text
        return [entry["name"] for entry in answer.json()]

    for bucket, folder in (("clips", "clips"), ("thumbnails", "thumbnails"), ("exports", "final")):
        assert await listed(bucket, f"projects/{doomed}/{folder}") == []
    assert len(await listed("clips", f"projects/{kept}/clips")) == 1


async def test_clips_saved_at_once_each_go_after_the_last(stack: Stack, lib: SupabaseStudio) -> None:
    """A renderer that saves its scenes' clips together (``asyncio.gather``, a thread pool on the plain
    functions) gave several of them the same place: each read the last one before any was written."""
    project_id = (await lib.create_project("Together"))["id"]
    saved = await asyncio.gather(
        *(
            lib.save_clip_record(
                project_id=project_id, scene_id=None, provider="p", file_url=None, prompt=str(n)
            )
            for n in range(8)
        )
    )
    assert sorted(clip["order_index"] for clip in saved) == list(range(8))
