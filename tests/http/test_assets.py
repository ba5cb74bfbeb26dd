"""Files, exports, audio files and voices over the HTTP API in local mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from syncd.statedir import free_bytes
from syncd.storage import BUCKETS
from tests.http.conftest import WAIT, LocalDaemon, local_settings, new_id, serving
from tests.support.waiting import wait_for

MB = 1024 * 1024


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.get(url)


async def test_an_uploaded_clip_comes_back_from_its_signed_url_only(daemon: LocalDaemon) -> None:
    """The URL of a private file is signed; without the token, with another's, or public: refused."""
    project_id = await daemon.project()
    path = f"projects/{project_id}/clips/scene-pika.mp4"
    put = await daemon.service.put(
        f"/v1/storage/clips/{path}", content=b"\x00mp4 bytes", headers={"Content-Type": "video/mp4"}
    )
    assert put.status_code == 201, put.text
    url = put.json()["url"]
    assert "/storage/v1/object/sign/clips/" in url
    got = await _get(url)
    assert (got.status_code, got.content, got.headers["Content-Type"]) == (200, b"\x00mp4 bytes", "video/mp4")
    unsigned = await _get(url.split("?")[0])
    forged = await _get(url[:-3] + "abc")
    public = await _get(f"{daemon.url}/storage/v1/object/public/clips/{path}")
    asked_public = await daemon.service.get(f"/v1/storage/public/clips/{path}")
    assert (unsigned.status_code, forged.status_code, public.status_code) == (401, 401, 403)
    assert asked_public.status_code == 403
    other = f"projects/{project_id}/clips/other.mp4"
    await daemon.service.put(
        f"/v1/storage/clips/{other}", content=b"x", headers={"Content-Type": "video/mp4"}
    )
    token = urlsplit(url).query
    assert (await _get(f"{daemon.url}/storage/v1/object/sign/clips/{other}?{token}")).status_code == 401


async def test_an_upload_with_a_bad_option_is_refused_before_anything_is_stored(daemon: LocalDaemon) -> None:
    """``?upsert=`` is true or false, ``?expires_in=`` whole seconds within the limit; nothing else passes."""
    project_id = await daemon.project()
    path = f"projects/{project_id}/clips/options.mp4"
    refused = {
        "upsert=maybe": "upsert: 'true' or 'false', not 'maybe'",
        "expires_in=-5": "expires_in: must be a positive whole number of seconds",
        "expires_in=0": "expires_in: must be a positive whole number of seconds",
        "expires_in=1.5": "expires_in: must be a positive whole number of seconds",
        f"expires_in={'9' * 5000}": "expires_in: at most 604800 seconds",
    }
    for query, message in refused.items():
        answer = await daemon.service.put(
            f"/v1/storage/clips/{path}?{query}", content=b"x", headers={"Content-Type": "video/mp4"}
        )
        assert (answer.status_code, answer.json()["message"]) == (400, message), query
    files = daemon.sup.files
    assert files is not None
    assert not files.file("clips", path).exists()
    stored = await daemon.service.put(
        f"/v1/storage/clips/{path}?upsert=false&expires_in=60",
        content=b"x",
        headers={"Content-Type": "video/mp4"},
    )
    assert stored.status_code == 201, stored.text
    expiry = int(parse_qs(urlsplit(stored.json()["url"]).query)["token"][0].split(".")[0])
    assert time.time() < expiry <= time.time() + 60


async def test_a_signed_url_expires_and_a_thumbnail_is_public(daemon: LocalDaemon) -> None:
    """A signed URL stops working after its expiry; a thumbnail's URL is public."""
    project_id = await daemon.project()
    path = f"projects/{project_id}/clips/a.webm"
    await daemon.service.put(
        f"/v1/storage/clips/{path}", content=b"webm", headers={"Content-Type": "video/webm"}
    )
    files = daemon.sup.files
    assert files is not None
    token = files.sign("clips", path, int(time.time()) - 1)
    expired = f"{daemon.url}/storage/v1/object/sign/clips/{path}?token={token}"
    assert (await _get(expired)).status_code == 403
    signed = await daemon.service.post(f"/v1/storage/sign/clips/{path}", json={"expires_in": 60})
    assert (await _get(signed.json()["signed_url"])).content == b"webm"
    thumb = f"projects/{project_id}/thumbnails/t.png"
    put = await daemon.service.put(
        f"/v1/storage/thumbnails/{thumb}", content=b"png", headers={"Content-Type": "image/png"}
    )
    assert put.json()["url"] == f"{daemon.url}/storage/v1/object/public/thumbnails/{thumb}"
    assert (await _get(put.json()["url"])).content == b"png"
    assert (await daemon.service.delete(f"/v1/storage/thumbnails/{thumb}")).json() == {"deleted": True}
    assert (await _get(put.json()["url"])).status_code == 404


async def test_an_editor_gets_a_fresh_signed_url_for_files_of_its_own_projects_only(
    daemon: LocalDaemon,
) -> None:
    """A clip's stored ``file_url`` expires; the page that shows the clip asks for a new one."""
    alice = new_id()
    as_alice, as_bob = daemon.as_user(alice), daemon.as_user(new_id())
    made = await as_alice.post("/v1/projects", json={"title": "Alice's"})
    path = f"projects/{made.json()['id']}/clips/shot.mp4"
    await daemon.service.put(
        f"/v1/storage/clips/{path}", content=b"mp4", headers={"Content-Type": "video/mp4"}
    )
    signed = await as_alice.post(f"/v1/storage/sign/clips/{path}", json={"expires_in": 600})
    assert signed.status_code == 200, signed.text
    assert (await _get(signed.json()["signed_url"])).content == b"mp4"
    expiry = int(parse_qs(urlsplit(signed.json()["signed_url"]).query)["token"][0].split(".")[0])
    assert time.time() < expiry <= time.time() + 600
    theirs = await as_bob.post(f"/v1/storage/sign/clips/{path}", json={})
    nobody = await daemon.anonymous.post(f"/v1/storage/sign/clips/{path}", json={})
    assert (theirs.status_code, nobody.status_code) == (403, 401), (theirs.text, nobody.text)
    anonymous_project = await daemon.project()
    shared = f"projects/{anonymous_project}/clips/shot.mp4"
    await daemon.service.put(
        f"/v1/storage/clips/{shared}", content=b"mp4", headers={"Content-Type": "video/mp4"}
    )
    by_anyone = await daemon.anonymous.post(f"/v1/storage/sign/clips/{shared}", json={})
    assert by_anyone.status_code == 200, by_anyone.text
    gone = new_id()
    elsewhere = await as_alice.post(f"/v1/storage/sign/clips/projects/{gone}/clips/a.mp4", json={})
    assert (elsewhere.status_code, elsewhere.json()["message"]) == (404, f"project {gone} does not exist")


async def test_uploads_that_break_a_bucket_rule_are_refused_and_store_nothing(daemon: LocalDaemon) -> None:
    """A path outside projects/{id}/, a missing project, a refused type, an oversize file, no such bucket."""
    project_id = await daemon.project()
    video = {"Content-Type": "video/mp4"}
    limit = BUCKETS["thumbnails"].size_limit
    cases = [
        ("clips/elsewhere/a.mp4", b"x", video, 400, "projects/{project_id}/"),
        (f"clips/projects/{project_id}/../x/a.mp4", b"x", video, 400, "projects/{project_id}/"),
        (f"clips/projects/{new_id()}/clips/a.mp4", b"x", video, 404, "does not exist"),
        (
            f"clips/projects/{project_id}/clips/a.txt",
            b"x",
            {"Content-Type": "text/plain"},
            400,
            "not accepted",
        ),
        (
            f"thumbnails/projects/{project_id}/thumbnails/big.png",
            b"x" * (limit + 1),
            {"Content-Type": "image/png"},
            413,
            "limit",
        ),
        (f"music/projects/{project_id}/a.mp3", b"x", {"Content-Type": "audio/mpeg"}, 404, "bucket"),
    ]
    for where, data, headers, status, words in cases:
        answer = await daemon.service.put(f"/v1/storage/{where}", content=data, headers=headers)
        assert answer.status_code == status, (where, answer.text)
        assert words in answer.json()["message"], answer.text
    assert not (daemon.state_dir / "files").exists() or not any((daemon.state_dir / "files").rglob("*.*"))
    no_key = await daemon.anonymous.put(
        f"/v1/storage/clips/projects/{project_id}/clips/a.mp4", content=b"x", headers=video
    )
    assert no_key.status_code == 401


async def test_an_export_requested_by_an_editor_and_its_progress_reach_every_editor(
    daemon: LocalDaemon,
) -> None:
    """The editor requests it, the renderer reports progress, both editors see each step in the stream."""
    project_id = await daemon.project()
    one, two = await daemon.editor(project_id), await daemon.editor(project_id)
    requested = await daemon.anonymous.post(f"/v1/projects/{project_id}/exports", json={"format": "webm"})
    assert requested.status_code == 201, requested.text
    export_id = requested.json()["id"]
    assert requested.json()["status"] == "queued"
    for step in (
        {"status": "rendering", "progress": 0.5},
        {"status": "done", "progress": 1.0, "file_url": "u"},
    ):
        answer = await daemon.service.patch(f"/v1/exports/{export_id}", json=step)
        assert answer.status_code == 200, answer.text

    def done() -> bool:
        return all(e.view.sides["exports"].get(export_id, {}).get("status") == "done" for e in (one, two))

    await wait_for(done, "both editors to see the export done", WAIT)
    assert one.view.sides["exports"][export_id]["file_url"] == "u"
    late = await daemon.editor(project_id)
    assert late.view.sides["exports"][export_id]["status"] == "done"
    back = await daemon.service.patch(f"/v1/exports/{export_id}", json={"status": "rendering"})
    assert (back.status_code, back.json()["error"]) == (409, "conflict")
    by_editor = await daemon.anonymous.patch(f"/v1/exports/{export_id}", json={"progress": 0.1})
    assert by_editor.status_code == 401
    sneaky = await daemon.anonymous.post(f"/v1/projects/{project_id}/exports", json={"status": "done"})
    assert sneaky.status_code == 403
    listed = (await daemon.service.get(f"/v1/projects/{project_id}/exports")).json()
    assert [(e["id"], e["status"]) for e in listed] == [(export_id, "done")]


async def test_audio_files_are_added_listed_and_removed_and_editors_follow(daemon: LocalDaemon) -> None:
    """An audio file row reaches the editor on insert and delete."""
    project_id = await daemon.project(scenes=1)
    editor = await daemon.editor(project_id)
    scene_id = next(iter(editor.view.scenes))
    added = await daemon.service.post(
        f"/v1/projects/{project_id}/audio", json={"kind": "music", "duration": 12.5, "scene_id": scene_id}
    )
    assert added.status_code == 201, added.text
    audio_id = added.json()["id"]
    await wait_for(
        lambda: audio_id in editor.view.sides["audio_files"], "the editor to get the audio file", WAIT
    )
    listed = (await daemon.service.get(f"/v1/projects/{project_id}/audio")).json()
    assert [a["kind"] for a in listed] == ["music"]
    bad = await daemon.service.post(f"/v1/projects/{project_id}/audio", json={"kind": "speech"})
    assert bad.status_code == 400
    assert (await daemon.service.delete(f"/v1/audio/{audio_id}")).status_code == 200
    await wait_for(lambda: audio_id not in editor.view.sides["audio_files"], "the editor to drop it", WAIT)


async def test_voices_belong_to_their_user_or_to_the_anonymous_studio(daemon: LocalDaemon) -> None:
    """Each user lists and changes only their voices; anonymous voices have no user."""
    alice = new_id()
    as_alice, as_bob = daemon.as_user(alice), daemon.as_user(new_id())
    mine = await as_alice.post(
        "/v1/voices", json={"name": "Narrator", "provider": "eleven", "voice_ref": "v1"}
    )
    shared = await daemon.anonymous.post("/v1/voices", json={"name": "Studio"})
    assert (mine.status_code, mine.json()["user_id"], shared.json()["user_id"]) == (201, alice, None)
    voice_id = mine.json()["id"]
    assert [v["name"] for v in (await as_alice.get("/v1/voices")).json()] == ["Narrator"]
    assert [v["name"] for v in (await daemon.anonymous.get("/v1/voices")).json()] == ["Studio"]
    assert (await as_bob.patch(f"/v1/voices/{voice_id}", json={"name": "Mine now"})).status_code == 403
    assert (await as_bob.delete(f"/v1/voices/{voice_id}")).status_code == 403
    renamed = await as_alice.patch(f"/v1/voices/{voice_id}", json={"name": "Host"})
    assert renamed.json()["name"] == "Host"
    assert (await as_alice.patch(f"/v1/voices/{voice_id}", json={"pitch": 2})).status_code == 400
    for bad in (  # PostgreSQL cannot store a NUL: refused in both modes, not only where it would fail
        await as_alice.patch(f"/v1/voices/{voice_id}", json={"name": "Ho\u0000st"}),
        await as_alice.post("/v1/voices", json={"name": "\u0000"}),
    ):
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
        assert bad.json()["message"].startswith("voices.name: text holds a NUL character")
    every = (await daemon.service.get("/v1/voices")).json()
    assert {v["name"] for v in every} == {"Host", "Studio"}
    alices = (await daemon.service.get("/v1/voices", params={"user_id": alice.upper()})).json()
    assert [v["name"] for v in alices] == ["Host"]
    # Not an empty list, which would read as "this user has no voices".
    misspelt = await daemon.service.get("/v1/voices", params={"user_id": "alice"})
    assert (misspelt.status_code, misspelt.json()["message"]) == (400, "user_id: must be a UUID")
    assert (await as_alice.delete(f"/v1/voices/{voice_id}")).status_code == 200
    assert (await as_alice.get("/v1/voices")).json() == []


async def test_a_streamed_upload_is_cut_off_at_the_limit_and_leaves_nothing(daemon: LocalDaemon) -> None:
    """Without a Content-Length the limit is checked as bytes arrive; nothing of a refused file is kept."""
    project_id = await daemon.project()
    limit = BUCKETS["thumbnails"].size_limit

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    url = f"/v1/storage/thumbnails/projects/{project_id}/thumbnails/big.png"
    refused = await daemon.service.put(url, content=chunks(), headers={"Content-Type": "image/png"})
    assert (refused.status_code, refused.json()["error"]) == (413, "too_large")
    files = daemon.state_dir / "files"
    assert [p for p in files.rglob("*") if p.is_file()] == []
    empty = await daemon.service.put(url, content=b"", headers={"Content-Type": "image/png"})
    assert (empty.status_code, empty.json()["size"]) == (201, 0)
    assert (await _get(empty.json()["url"])).content == b""


async def test_a_daemon_on_an_ipv6_address_gives_file_urls_that_open(tmp_path: Path) -> None:
    """``http://::1:8765/...`` is no URL: the address goes in brackets in what is stored."""
    settings = local_settings(tmp_path / "state")
    settings = settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"host": "::1"})})
    async with serving(settings) as running:
        base = f"http://[::1]:{running.sup.gateway.port}"
        headers = {"Authorization": f"Bearer {running.key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=WAIT) as service:
            made = await service.post("/v1/projects", json={"title": "On IPv6"})
            path = f"projects/{made.json()['id']}/clips/shot.mp4"
            put = await service.put(
                f"/v1/storage/clips/{path}", content=b"\x00mp4", headers={"Content-Type": "video/mp4"}
            )
        assert put.status_code == 201, put.text
        url = put.json()["url"]
        assert url.startswith(f"{base}/storage/v1/object/sign/clips/"), url
        assert (await _get(url)).content == b"\x00mp4"


async def test_an_upload_that_would_leave_the_journal_no_room_is_refused(tmp_path: Path) -> None:
    """Local mode keeps every clip and export on the disk of the edits' journal, and a journal that
    cannot be written stops the daemon: an upload stops short of the reserve, refused before its body
    when it says its length, or as its bytes arrive; nothing of it is kept."""
    state = tmp_path / "state"
    state.mkdir()
    room = 32 * MB
    settings = local_settings(state)
    reserve = int(free_bytes(state)) - room
    settings = settings.model_copy(
        update={"daemon": settings.daemon.model_copy(update={"upload_reserve": reserve})}
    )
    async with serving(settings) as running:
        project_id = await running.project()
        path = f"/v1/storage/clips/projects/{project_id}/clips/long.mp4"
        said = await _declared_upload(running, path, 3 * room)
        assert said.startswith("HTTP/1.1 503 "), said
        assert "(daemon.upload_reserve) for the edits' journal and store: free some space first" in said

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3 * room // MB):
                yield b"x" * MB

        streamed = await running.service.put(path, content=chunks(), headers={"Content-Type": "video/mp4"})
        assert (streamed.status_code, streamed.json()["error"]) == (503, "unavailable")
        assert [p for p in (state / "files").rglob("*") if p.is_file()] == []
        small = await running.service.put(path, content=b"\x00mp4", headers={"Content-Type": "video/mp4"})
        assert small.status_code == 201, small.text


async def _declared_upload(daemon: LocalDaemon, path: str, length: int) -> str:
    """The answer's head to an upload that says it is ``length`` bytes and sends none of them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.sup.gateway.port)
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: syncd\r\nAuthorization: Bearer {daemon.key}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.read(4096), WAIT)
    finally:
        writer.close()
    return head.decode(errors="replace")


async def test_a_deleted_voice_leaves_the_open_projects_at_once(daemon: LocalDaemon) -> None:
    """The store sets a deleted voice's scenes and audio files to no voice, and no change feed says so
    in local mode: the open project read itself again, or its editors, and a renderer reading its live
    view, kept the voice that is gone."""
    project_id = await daemon.project(scenes=1)
    voice_id = (await daemon.service.post("/v1/voices", json={"name": "Narrator"})).json()["id"]
    audio = await daemon.service.post(f"/v1/projects/{project_id}/audio", json={"voice_id": voice_id})
    assert audio.status_code == 201, audio.text
    editor = await daemon.editor(project_id)
    scene_id = editor.view.ordered("scenes")[0]["id"]
    await editor.wait_saved((await editor.patch("scenes", scene_id, {"voice_id": voice_id})).seq)
    assert (await daemon.service.delete(f"/v1/voices/{voice_id}")).status_code == 200

    def voices() -> list[object]:
        scenes = [scene["voice_id"] for scene in editor.view.ordered("scenes")]
        return scenes + [row["voice_id"] for row in editor.view.sides.get("audio_files", {}).values()]

    await editor.wait_until(lambda: voices() == [None, None])
    live = (await daemon.service.get(f"/v1/projects/{project_id}")).json()
    assert [row["voice_id"] for row in (*live["scenes"], *live["audio_files"])] == [None, None]


async def test_an_audio_file_of_a_deleted_scene_loses_it_in_the_editors_too(daemon: LocalDaemon) -> None:
    """The store sets the audio files of a deleted scene to no scene, and no change feed says so in
    local mode: the editors kept showing the scene that is gone."""
    project_id = await daemon.project(scenes=2)
    editor = await daemon.editor(project_id)
    scene_id = editor.view.ordered("scenes")[0]["id"]
    audio = await daemon.service.post(f"/v1/projects/{project_id}/audio", json={"scene_id": scene_id})
    assert audio.status_code == 201, audio.text

    def scenes_of_audio() -> list[object]:
        return [row["scene_id"] for row in editor.view.sides.get("audio_files", {}).values()]

    await editor.wait_until(lambda: scenes_of_audio() == [scene_id])
    await editor.wait_saved((await editor.delete("scenes", scene_id)).seq)
    await editor.wait_until(lambda: scenes_of_audio() == [None])


async def test_deleting_a_project_removes_its_stored_files_and_only_its_own(daemon: LocalDaemon) -> None:
    """No database cascade reaches the files: a studio that deletes its trial projects got none of
    their clips' space back (500 MB a clip, 2 GB an export)."""
    doomed, kept = await daemon.project("Trial"), await daemon.project("Kept")
    urls = []
    for project_id, bucket, folder, kind in (
        (doomed, "clips", "clips", "video/mp4"),
        (doomed, "thumbnails", "thumbnails", "image/png"),
        (doomed, "exports", "final", "video/mp4"),
        (kept, "clips", "clips", "video/mp4"),
    ):
        put = await daemon.service.put(
            f"/v1/storage/{bucket}/projects/{project_id}/{folder}/a.bin",
            content=b"x",
            headers={"Content-Type": kind},
        )
        assert put.status_code == 201, put.text
        urls.append(put.json()["url"])
    assert (await daemon.service.delete(f"/v1/projects/{doomed}")).json() == {"deleted": True}
    files = daemon.state_dir / "files"
    left = sorted(str(p.relative_to(files)) for p in files.rglob("*") if p.is_file())
    assert left == [f"clips/projects/{kept}/clips/a.bin", f"clips/projects/{kept}/clips/a.bin.type"]
    assert [(await _get(url)).status_code for url in urls] == [404, 404, 404, 200]
