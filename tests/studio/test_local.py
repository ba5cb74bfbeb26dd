"""``syncd.studio`` against syncd in local mode: every call, the plain functions, and bad input."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import cast
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from aiohttp import web

import syncd.studio as studio
from syncd.studio import Studio, StudioError, connect
from syncd.studio.daemon import DaemonStudio
from tests.http.conftest import WAIT, LocalDaemon, new_id
from tests.support.waiting import wait_for


@pytest.fixture
async def lib(daemon: LocalDaemon) -> AsyncIterator[DaemonStudio]:
    """The async library, pointed at the daemon with its service key."""
    client = connect({"SYNCD_URL": daemon.url, "SYNCD_SERVICE_KEY": daemon.key})
    assert isinstance(client, DaemonStudio)
    async with client:
        yield client


@pytest.fixture
def plain(daemon: LocalDaemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plain functions, configured from the environment as a renderer is."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNCD_URL", daemon.url)
    monkeypatch.setenv("SYNCD_SERVICE_KEY", daemon.key)
    studio.reset()
    yield
    studio.reset()


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.get(url)


def test_without_settings_every_function_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SUPABASE_* and no SYNCD_*: one clear error naming the variables, not a deep traceback."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "SYNCD_URL", "SYNCD_SERVICE_KEY"):
        monkeypatch.delenv(name, raising=False)
    studio.reset()
    with pytest.raises(StudioError) as caught:
        studio.upload_video_clip(new_id(), None, b"x", "pika")
    for name in (
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
        "SYNCD_URL",
        "SYNCD_SERVICE_KEY",
        "syncd service-key",
    ):
        assert name in str(caught.value)
    assert caught.value.code == "unconfigured"
    with pytest.raises(StudioError, match="SYNCD_SERVICE_KEY"):
        connect({"SYNCD_URL": "http://127.0.0.1:1"})


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8765", "localhost", "http://", "ftp://studio/x", "http://studio:port"]
)
def test_an_address_that_is_not_a_url_is_refused_before_any_call(url: str) -> None:
    """A daemon's was tried as one, failed as "unavailable", and was sent again for 20 s."""
    with pytest.raises(StudioError) as caught:
        connect({"SYNCD_URL": url, "SYNCD_SERVICE_KEY": "k"})
    assert caught.value.code == "unconfigured"
    assert (
        caught.value.message == f"SYNCD_URL: the daemon's address, such as http://127.0.0.1:8765, not {url!r}"
    )
    with pytest.raises(StudioError) as supabase:  # supabase-py raised its own "Invalid URL" at the first call
        connect({"SUPABASE_URL": url, "SUPABASE_SERVICE_KEY": "sb_secret_k"})
    expected = f"SUPABASE_URL: the project's URL, such as https://abcd.supabase.co, not {url!r}"
    assert (supabase.value.code, supabase.value.message) == ("unconfigured", expected)


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (jwt.encode({"role": "anon"}, "s" * 32), "SUPABASE_SERVICE_KEY has role 'anon', not 'service_role'"),
        ("sb_publishable_abc", "SUPABASE_SERVICE_KEY is a publishable key"),
        ("service-key-typo", "SUPABASE_SERVICE_KEY is neither a JWT nor a secret key"),
    ],
)
def test_a_key_that_is_not_a_service_key_is_refused_before_any_call(key: str, words: str) -> None:
    """An anon key would create rows, then fail on syncd_apply (sync_scenes, save_clip_record)."""
    with pytest.raises(StudioError) as caught:
        connect({"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_KEY": key})
    assert caught.value.code == "unconfigured"
    assert caught.value.message.startswith(words)
    assert key not in str(caught.value)
    assert connect({"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_KEY": "sb_secret_x"}).mode == (
        "supabase"
    )


async def test_the_seeds_renderer_calls_store_the_clip_and_an_editor_gets_it_within_50_ms(
    daemon: LocalDaemon, plain: None
) -> None:
    """``upload_video_clip`` then ``save_clip_record``: the bytes come back, the clip is appended, live."""
    project_id = await daemon.project(scenes=1)
    editor = await daemon.editor(project_id)
    scene_id = next(iter(editor.view.scenes))
    await daemon.service.post(f"/v1/projects/{project_id}/clips", json={"prompt": "earlier"})
    clip_bytes = b"\x00\x00\x00\x18ftypmp42 clip"
    file_url = await asyncio.to_thread(studio.upload_video_clip, project_id, scene_id, clip_bytes, "pika")
    row = await asyncio.to_thread(
        lambda: studio.save_clip_record(
            project_id=project_id,
            scene_id=scene_id,
            provider="pika",
            file_url=file_url,
            prompt="a lighthouse",
        )
    )
    returned = time.monotonic()
    await wait_for(lambda: row["id"] in editor.view.clips, "the editor to get the clip", 0.05)
    assert time.monotonic() - returned < 0.05
    assert editor.view.clips[row["id"]]["file_url"] == file_url
    assert (row["order_index"], row["status"], row["scene_id"]) == (1, "ready", scene_id)
    assert f"/projects/{project_id}/clips/{scene_id}-pika-" in file_url
    assert (await fetch(file_url)).content == clip_bytes


async def test_projects_scenes_and_clips_through_the_library(lib: DaemonStudio, daemon: LocalDaemon) -> None:
    """Create (idempotent), update, load, sync scenes, save, reorder and delete clips, delete the project."""
    project_id = new_id()
    project = await lib.create_project("Library film", id=project_id, aspect_ratio="9:16")
    assert (await lib.create_project("Library film", id=project_id, aspect_ratio="9:16")) == project
    with pytest.raises(StudioError) as conflict:
        await lib.create_project("Other", id=project_id)
    assert (conflict.value.code, conflict.value.status) == ("conflict", 409)
    assert (await lib.update_project(project_id, title="Renamed"))["title"] == "Renamed"
    scenes = await lib.sync_scenes(project_id, [{"heading": "One"}, {"heading": "Two"}, {"heading": "Three"}])
    one, two, three = (s["id"] for s in scenes)
    scenes = await lib.sync_scenes(project_id, [{"id": three}, {"id": one, "body": "b"}, {"heading": "Four"}])
    assert [s["heading"] for s in scenes] == ["Three", "One", "Four"]
    assert two not in {s["id"] for s in scenes}
    clips = [await lib.add_clip(project_id, {"prompt": str(i), "scene_id": one}) for i in range(3)]
    assert [c["order_index"] for c in clips] == [0, 1, 2]
    saved = await lib.save_clip(project_id, clips[0]["id"], status="failed")
    assert saved["status"] == "failed"
    order = await lib.reorder_clips(project_id, [clips[2]["id"]])
    assert [c["id"] for c in order] == [clips[2]["id"], clips[0]["id"], clips[1]["id"]]
    await lib.delete_clip(project_id, clips[1]["id"])
    loaded = await lib.load_project(project_id)
    assert set(loaded) == {"project", "scenes", "clips"}
    assert [c["prompt"] for c in loaded["clips"]] == ["2", "0"]
    assert [s["scene_index"] for s in loaded["scenes"]] == [0, 1, 2]
    await lib.delete_project(project_id)
    with pytest.raises(StudioError) as gone:
        await lib.load_project(project_id)
    assert gone.value.code == "not_found"


async def test_names_in_any_script_make_paths_storage_takes(lib: DaemonStudio, daemon: LocalDaemon) -> None:
    """A voice named Zoë or a title in Japanese: the library's own file names must pass the path check."""
    project_id = await daemon.project()
    urls = [
        await lib.upload_audio(project_id, b"ID3", name="Zoë's thème"),
        await lib.upload_audio(project_id, b"ID3", name="日本語のナレーション"),
        await lib.upload_export(project_id, b"final", name="Ünïcode cut"),
        await lib.upload_video_clip(project_id, None, b"clip", "Pïka Labs"),
    ]
    names = [urlsplit(url).path.rsplit("/", 1)[1] for url in urls]
    assert [n.rsplit("-", 2)[0] for n in names] == ["zoe-s-theme", "file", "unicode-cut", "clip-pika-labs"]
    assert [(await fetch(url)).content for url in urls] == [b"ID3", b"ID3", b"final", b"clip"]


async def test_files_voices_exports_and_audio_files_through_the_library(
    lib: DaemonStudio, daemon: LocalDaemon
) -> None:
    """Every upload kind, signed and public URLs, voices, an export's steps, audio files."""
    project_id = await daemon.project()
    audio_url = await lib.upload_audio(project_id, b"ID3", name="voice over")
    export_url = await lib.upload_export(project_id, b"final", content_type="video/mp4")
    thumb_url = await lib.upload_thumbnail(project_id, b"png")
    assert "/audio/" in audio_url
    assert "/final/" in export_url
    assert "/object/public/thumbnails/" in thumb_url
    assert [(await fetch(u)).content for u in (audio_url, export_url, thumb_url)] == [
        b"ID3",
        b"final",
        b"png",
    ]
    path = f"projects/{project_id}/clips/by-hand.mp4"
    await lib.upload("clips", path, b"hand", "video/mp4")
    assert (await fetch(await lib.signed_url("clips", path, 30))).content == b"hand"
    files = daemon.sup.files
    assert files is not None
    week_old = f"{daemon.url}/storage/v1/object/sign/clips/{path}?token={files.sign('clips', path, 1)}"
    assert (await fetch(week_old)).status_code == 403
    assert (await fetch(await lib.fresh_url(week_old))).content == b"hand"
    assert await lib.fresh_url(thumb_url) == thumb_url
    assert await lib.fresh_url("https://cdn.example.com/a.mp4") == "https://cdn.example.com/a.mp4"
    with pytest.raises(StudioError) as private:
        await lib.public_url("clips", path)
    assert private.value.status == 403
    assert await lib.remove_file("clips", path) is True
    voice = await lib.create_voice(name="Narrator", provider="eleven")
    assert (await lib.update_voice(voice["id"], voice_ref="v2"))["voice_ref"] == "v2"
    assert [v["id"] for v in await lib.list_voices()] == [voice["id"]]
    await lib.delete_voice(voice["id"])
    assert await lib.list_voices() == []
    export = await lib.create_export(project_id, format="mp4")
    await lib.update_export(export["id"], status="rendering", progress=0.3)
    await lib.update_export(export["id"], status="failed", error="out of memory")
    with pytest.raises(StudioError) as backwards:
        await lib.update_export(export["id"], status="rendering")
    assert backwards.value.code == "conflict"
    assert [(e["status"], e["error"]) for e in await lib.list_exports(project_id)] == [
        ("failed", "out of memory")
    ]
    audio = await lib.create_audio_file(project_id, kind="voice", file_url=audio_url, duration=3.0)
    assert [a["id"] for a in await lib.list_audio_files(project_id)] == [audio["id"]]
    await lib.delete_audio_file(audio["id"])
    assert await lib.list_audio_files(project_id) == []


async def test_the_plain_functions_cover_the_whole_library(daemon: LocalDaemon, plain: None) -> None:
    """Each plain function runs its call on the background loop and returns plain data."""
    project = await asyncio.to_thread(studio.create_project, "Plain")
    project_id = project["id"]

    def renderer_session() -> dict[str, object]:
        studio.update_project(project_id, script="Once upon a time")
        scenes = studio.sync_scenes(project_id, [{"heading": "A"}, {"heading": "B"}])
        clip = studio.save_clip_record(
            project_id=project_id, scene_id=scenes[0]["id"], provider="runway", file_url=None, prompt="p"
        )
        studio.save_clip(project_id, clip["id"], duration=2.0)
        other = studio.save_clip_record(
            project_id=project_id, scene_id=None, provider="x", file_url=None, prompt="q"
        )
        studio.reorder_clips(project_id, [other["id"]])
        studio.delete_clip(project_id, clip["id"])
        thumb = studio.upload_thumbnail(project_id, b"t")
        audio = studio.upload_audio(project_id, b"a")
        final = studio.upload_export(project_id, b"f")
        signed = studio.signed_url("exports", final.split("/exports/")[1].split("?")[0], 60)
        voice = studio.create_voice(name="v")
        studio.update_voice(voice["id"], name="w")
        voices = studio.list_voices()
        studio.delete_voice(voice["id"])
        export = studio.create_export(project_id)
        studio.update_export(export["id"], status="done", file_url=final)
        row = studio.create_audio_file(project_id, file_url=audio)
        audio_rows = studio.list_audio_files(project_id)
        studio.delete_audio_file(row["id"])
        loaded = studio.load_project(project_id)
        exports = studio.list_exports(project_id)
        studio.delete_project(project_id)
        return {
            "loaded": loaded,
            "voices": voices,
            "exports": exports,
            "audio": audio_rows,
            "urls": [thumb, signed],
        }

    out = await asyncio.to_thread(renderer_session)
    loaded = out["loaded"]
    assert isinstance(loaded, dict)
    assert loaded["project"]["script"] == "Once upon a time"
    assert [c["prompt"] for c in loaded["clips"]] == ["q"]
    assert [v["name"] for v in out["voices"]] == ["w"]  # type: ignore[attr-defined]
    assert [e["status"] for e in out["exports"]] == ["done"]  # type: ignore[attr-defined]
    assert len(out["audio"]) == 1  # type: ignore[arg-type]
    assert (await daemon.stored(project_id))["project"] is None


async def test_bad_input_through_the_library_changes_nothing(lib: DaemonStudio, daemon: LocalDaemon) -> None:
    """Path outside the project, no project, refused type, oversize file: clear errors, nothing stored."""
    project_id = await daemon.project()
    cases = [
        (lib.upload("clips", "elsewhere/a.mp4", b"x", "video/mp4"), "bad_request"),
        (lib.upload_video_clip(new_id(), None, b"x", "pika"), "not_found"),
        (lib.upload_video_clip(project_id, None, b"x", "pika", content_type="image/png"), "bad_request"),
        (lib.upload_thumbnail(project_id, b"x" * (5 * 1024 * 1024 + 1)), "too_large"),
        (lib.upload_video_clip(project_id, None, cast(bytes, "/etc/hostname"), "pika"), "bad_request"),
        (
            lib.save_clip_record(project_id=new_id(), scene_id=None, provider="p", file_url=None, prompt=""),
            "not_found",
        ),
        (
            lib.save_clip_record(
                project_id=project_id, scene_id="nope", provider="p", file_url=None, prompt=""
            ),
            "bad_request",
        ),
    ]
    for call, code in cases:
        with pytest.raises(StudioError) as caught:
            await call
        assert caught.value.code == code, caught.value
    assert (await daemon.stored(project_id))["clips"] == []
    assert (
        not any((daemon.state_dir / "files").rglob("*.mp4"))
        if (daemon.state_dir / "files").exists()
        else True
    )


def test_the_librarys_variables_do_not_trouble_the_daemons_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SYNCD_URL`` and ``SYNCD_SERVICE_KEY`` belong to the library: the daemon's settings ignore them."""
    from syncd.config import load_settings

    monkeypatch.setenv("SYNCD_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("SYNCD_SERVICE_KEY", "syncd_sk_x")
    assert load_settings(None).mode == "local"


@pytest.mark.parametrize(
    ("status", "code"),
    [(502, "unavailable"), (504, "unavailable"), (500, "internal"), (200, "internal"), (404, "internal")],
)
async def test_an_answer_that_is_not_syncds_is_named_with_its_status(status: int, code: str) -> None:
    """A proxy's HTML page while the daemon restarts is worth retrying (``unavailable``); others are not."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = {
            "SYNCD_URL": f"http://127.0.0.1:{port}",
            "SYNCD_SERVICE_KEY": "k",
            "SYNCD_RETRY_SECONDS": "0",
        }
        async with connect(settings) as lib:
            with pytest.raises(StudioError) as caught:
                await lib.load_project(new_id())
    finally:
        await runner.cleanup()
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.message == f"http://127.0.0.1:{port} answered {status} without syncd's JSON"


async def test_an_unreachable_backend_is_unavailable_in_either_mode() -> None:
    """No daemon, no Supabase at the address: ``unavailable``, with the address, never the key."""
    project = "0f000000-0000-4000-8000-00000000beef"
    # The renderer's uploads go through the base class's upload(): they are translated too.
    calls: list[Callable[[Studio], Awaitable[object]]] = [
        lambda lib: lib.create_project("nowhere"),
        lambda lib: lib.upload_video_clip(project, None, b"mp4", "pika"),
        lambda lib: lib.upload("thumbnails", f"projects/{project}/thumbnails/a.png", b"png", "image/png"),
    ]
    for env in (
        {
            "SYNCD_URL": "http://127.0.0.1:9",
            "SYNCD_SERVICE_KEY": "syncd_sk_secret",
            "SYNCD_RETRY_SECONDS": "0",
        },
        {
            "SUPABASE_URL": "http://127.0.0.1:9",
            "SUPABASE_SERVICE_KEY": jwt.encode({"role": "service_role"}, "secret" * 6),
        },
    ):
        async with connect(env) as lib:
            for call in calls:
                with pytest.raises(StudioError) as caught:
                    await call(lib)
                assert caught.value.code == "unavailable", env
                assert "secret" not in str(caught.value)


@pytest.mark.parametrize("tail", ["", "/", "/v1", "/v1/"])
async def test_behind_a_proxy_that_serves_syncd_under_a_path(daemon: LocalDaemon, tail: str) -> None:
    """``SYNCD_URL`` keeps the proxy's path; the API's address as ``syncd run`` prints it (``…/v1``)
    names the same daemon."""
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(request.path)
        async with httpx.AsyncClient(base_url=daemon.url, timeout=WAIT) as upstream:
            answer = await upstream.request(
                request.method,
                request.match_info["tail"],
                params=request.query,
                headers={"Authorization": request.headers.get("Authorization", "")},
                content=await request.read(),
            )
        return web.Response(status=answer.status_code, body=answer.content, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/syncd/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/syncd{tail}"
    try:
        async with connect({"SYNCD_URL": url, "SYNCD_SERVICE_KEY": daemon.key}) as lib:
            made = await lib.create_project(title="Behind a proxy")
            await lib.sync_scenes(made["id"], [{"heading": "Through"}])
    finally:
        await runner.cleanup()
    assert seen == ["/syncd/v1/projects", f"/syncd/v1/projects/{made['id']}/scenes"]
    view = (await daemon.service.get(f"/v1/projects/{made['id']}")).json()
    assert [scene["heading"] for scene in view["scenes"]] == ["Through"]


def _forked_renderer(project_id: str, answers: multiprocessing.Queue[object]) -> None:
    """A render worker forked after its parent made calls: it makes one of its own."""
    try:
        answers.put(
            studio.save_clip_record(
                project_id=project_id, scene_id=None, provider="pika", file_url=None, prompt="from a worker"
            )["prompt"]
        )
    except BaseException as exc:  # reported to the test, which fails with it
        answers.put(repr(exc))


# Python 3.12 and later warn of any fork in a process with threads, as this test's is; 3.11 does not.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
async def test_a_worker_forked_after_calls_makes_calls_of_its_own(daemon: LocalDaemon, plain: None) -> None:
    """A renderer's multiprocessing pool forks (the default on Linux) after the parent's calls: the
    child has the parent's background loop but not the thread that runs it, and its first call
    waited forever."""
    project_id = (await asyncio.to_thread(studio.create_project, "Forked"))["id"]
    fork = multiprocessing.get_context("fork")
    answers: multiprocessing.Queue[object] = fork.Queue()
    worker = fork.Process(target=_forked_renderer, args=(project_id, answers))
    worker.start()
    try:
        answer = await asyncio.to_thread(answers.get, True, WAIT)
    except queue.Empty:
        answer = "no answer: the worker's call hangs"
    finally:
        worker.kill()
        await asyncio.to_thread(worker.join)
        answers.close()
    assert answer == "from a worker"
    prompts = [clip["prompt"] for clip in (await asyncio.to_thread(studio.load_project, project_id))["clips"]]
    assert prompts == ["from a worker"]
