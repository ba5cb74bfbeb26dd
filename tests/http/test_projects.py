"""Projects, scenes and clips over the HTTP API in local mode: access, idempotence, and writes that go
through the engine (editors see them at once; ``sync_scenes`` lands in one ``saved`` step)."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from typing import Any

import pytest
from websockets.asyncio.client import connect

from syncd.cli import main
from syncd.rows import FIELD_DEPTH
from tests.http.conftest import WAIT, LocalDaemon, new_id
from tests.support.waiting import wait_for


async def test_the_service_key_is_made_once_readable_by_its_owner_only(
    daemon: LocalDaemon, capsys: Any
) -> None:
    """The key file is 0600 and ``syncd service-key`` prints the key the daemon accepts."""
    path = daemon.state_dir / "service.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["service-key", "--state-dir", str(daemon.state_dir)]) == 0
    assert capsys.readouterr().out.strip() == daemon.key
    assert (await daemon.service.get("/v1/projects")).status_code == 200


async def test_an_editor_creates_a_project_with_its_own_id_and_the_same_call_again_is_harmless(
    daemon: LocalDaemon,
) -> None:
    """A client-chosen id is kept; the same id and body answer the same row; another body is a conflict."""
    project_id = new_id()
    body = {"id": project_id, "title": "Storyboard"}
    first = await daemon.anonymous.post("/v1/projects", json=body)
    again = await daemon.anonymous.post("/v1/projects", json=body)
    other = await daemon.anonymous.post("/v1/projects", json={**body, "title": "Other"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert first.json() == again.json()
    assert first.json()["id"] == project_id
    assert first.json()["user_id"] is None
    assert "version" not in first.json()
    assert other.json()["error"] == "conflict"
    assert (await daemon.stored(project_id))["project"]["title"] == "Storyboard"


async def test_users_create_list_and_delete_their_own_projects_only(daemon: LocalDaemon) -> None:
    """A user's project is theirs; another user can neither create one for them nor delete it."""
    alice, bob = new_id(), new_id()
    as_alice, as_bob = daemon.as_user(alice), daemon.as_user(bob)
    created = await as_alice.post("/v1/projects", json={"title": "Alice's"})
    assert created.status_code == 201
    assert created.json()["user_id"] == alice
    project_id = created.json()["id"]
    for_alice = await as_bob.post("/v1/projects", json={"title": "Sneaky", "user_id": alice})
    assert for_alice.status_code == 403
    assert [p["id"] for p in (await as_alice.get("/v1/projects")).json()] == [project_id]
    assert (await as_bob.get("/v1/projects")).json() == []
    assert (await as_bob.delete(f"/v1/projects/{project_id}")).status_code == 403
    assert (await daemon.anonymous.delete(f"/v1/projects/{project_id}")).status_code == 401
    assert (await as_alice.delete(f"/v1/projects/{project_id}")).status_code == 200
    assert (await daemon.stored(project_id))["project"] is None


async def test_service_calls_need_the_service_key(daemon: LocalDaemon) -> None:
    """No key: 401; an editor's token: 403; a wrong key: 401. Nothing changes, and no key is echoed."""
    project_id = await daemon.project()
    clip = {"provider": "pika", "prompt": "x"}
    anonymous = await daemon.anonymous.post(f"/v1/projects/{project_id}/clips", json=clip)
    editor = await daemon.as_user(new_id()).post(f"/v1/projects/{project_id}/clips", json=clip)
    wrong = await daemon.anonymous.post(
        f"/v1/projects/{project_id}/clips", json=clip, headers={"Authorization": "Bearer syncd_sk_nope"}
    )
    assert (anonymous.status_code, editor.status_code, wrong.status_code) == (401, 403, 401)
    assert anonymous.json()["error"] == "unauthorized"
    assert editor.json()["error"] == "forbidden"
    assert daemon.key not in anonymous.text + editor.text + wrong.text
    assert (await daemon.stored(project_id))["clips"] == []


async def test_a_clip_added_by_a_service_reaches_an_editor_at_once_and_goes_after_the_last(
    daemon: LocalDaemon,
) -> None:
    """``POST …/clips`` appends after the last clip, and the editor has it by the time the call returns."""
    project_id = await daemon.project()
    editor = await daemon.editor(project_id)
    url = f"/v1/projects/{project_id}/clips"
    first = await daemon.service.post(url, json={"provider": "pika", "prompt": "one"})
    second = await daemon.service.post(url, json={"provider": "pika", "prompt": "two"})
    assert (first.json()["order_index"], second.json()["order_index"]) == (0, 1)
    await wait_for(lambda: second.json()["id"] in editor.view.clips, "the editor to get the clip", 0.05)
    clip = editor.view.clips[second.json()["id"]]
    assert clip["prompt"] == "two"
    assert clip["project_id"] == project_id


async def test_a_create_sent_again_with_its_id_answers_200_and_adds_nothing(daemon: LocalDaemon) -> None:
    """A renderer that lost the answer repeats the call: the same row, no second one, and no change frame."""
    project_id = await daemon.project()
    editor = await daemon.editor(project_id)
    clip_id, export_id, audio_id, voice_id = (new_id() for _ in range(4))
    creates = [
        # Saved at once: the save's version step is a change of its own, which must not land between
        # the two reads of seq below.
        (
            f"/v1/projects/{project_id}/clips?save=now",
            {"id": clip_id, "provider": "pika", "prompt": "one"},
            "prompt",
        ),
        (f"/v1/projects/{project_id}/exports", {"id": export_id, "format": "gif"}, "resolution"),
        (f"/v1/projects/{project_id}/audio", {"id": audio_id, "kind": "sfx"}, "file_url"),
        ("/v1/voices", {"id": voice_id, "name": "Narrator"}, "name"),
    ]
    for url, body, field in creates:
        first = await daemon.service.post(url, json=body)
        seq = (await daemon.service.get(f"/v1/projects/{project_id}")).json()["seq"]
        again = await daemon.service.post(url, json=body)
        assert (first.status_code, again.status_code, again.json()) == (201, 200, first.json()), url
        assert (await daemon.service.get(f"/v1/projects/{project_id}")).json()["seq"] == seq, url
        other = await daemon.service.post(url, json={**body, "id": body["id"].upper(), field: "other"})
        assert (other.status_code, other.json()["error"]) == (409, "conflict"), url
        assert "exists with other values" in other.json()["message"], url
    view = (await daemon.service.get(f"/v1/projects/{project_id}")).json()
    assert [c["id"] for c in view["clips"]] == [clip_id]
    assert [e["id"] for e in view["exports"]] == [export_id]
    assert [a["id"] for a in view["audio_files"]] == [audio_id]
    assert list(editor.view.clips) == [clip_id]


async def test_sync_scenes_leaves_exactly_the_list_in_one_saved_step(daemon: LocalDaemon) -> None:
    """A reordered, shortened and extended list: the editor sees that list, and one ``saved`` covers it."""
    project_id = await daemon.project(scenes=3)
    scenes = (await daemon.service.get(f"/v1/projects/{project_id}")).json()["scenes"]
    a, b, c = (s["id"] for s in scenes)
    frames: list[dict[str, Any]] = []
    async with connect(daemon.ws_url) as ws:
        hello = {
            "type": "hello",
            "protocol": 1,
            "project_id": project_id,
            "client_id": new_id(),
            "token": None,
        }
        await ws.send(json.dumps(hello))
        listening = asyncio.create_task(_collect(ws, frames))
        await wait_for(lambda: any(f["type"] == "snapshot" for f in frames), "the snapshot", WAIT)
        wanted = [{"id": c, "heading": "Last is first"}, {"id": a}, {"heading": "New"}]
        answer = await daemon.service.put(
            f"/v1/projects/{project_id}/scenes?save=now", json={"scenes": wanted}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["saved"] is True
        seq = answer.json()["seq"]
        await wait_for(lambda: any(f["type"] == "saved" and f["seq"] >= seq for f in frames), "saved", WAIT)
        listening.cancel()
    saved = [f for f in frames if f["type"] == "saved"]
    assert len(saved) == 1
    stored = (await daemon.stored(project_id))["scenes"]
    assert [s["heading"] for s in stored] == ["Last is first", "Scene 1", "New"]
    assert [s["id"] for s in stored][:2] == [c, a]
    assert [s["scene_index"] for s in stored] == [0, 1, 2]
    assert b not in {s["id"] for s in stored}
    changes = [f for f in frames if f["type"] == "change" and f["origin"] == "editor"]
    assert {f["op"] for f in changes} == {"insert", "update", "delete"}
    assert all(f["seq"] <= saved[0]["seq"] for f in changes)


async def _collect(ws: Any, frames: list[dict[str, Any]]) -> None:
    async for data in ws:
        frames.append(json.loads(data))


async def test_a_bad_scene_list_changes_nothing(daemon: LocalDaemon) -> None:
    """A wrong field in the third scene refuses the whole list, naming where."""
    project_id = await daemon.project(scenes=2)
    before = (await daemon.service.get(f"/v1/projects/{project_id}")).json()
    wanted = [{"heading": "x"}, {"heading": "y"}, {"heading": 7}]
    answer = await daemon.service.put(f"/v1/projects/{project_id}/scenes", json={"scenes": wanted})
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("scenes[2].heading")
    after = (await daemon.service.get(f"/v1/projects/{project_id}")).json()
    assert after["scenes"] == before["scenes"]
    assert after["seq"] == before["seq"]


async def test_project_fields_clips_and_their_order_change_through_the_engine(daemon: LocalDaemon) -> None:
    """Patch a project and a clip, reorder and delete clips; each answer holds the live rows."""
    project_id = await daemon.project()
    editor = await daemon.editor(project_id)
    url = f"/v1/projects/{project_id}"
    patched = await daemon.service.patch(url, json={"title": "Renamed", "status": "ready"})
    assert patched.json()["project"]["title"] == "Renamed"
    ids = [
        (await daemon.service.post(f"{url}/clips", json={"prompt": str(i)})).json()["id"] for i in range(3)
    ]
    changed = await daemon.service.patch(f"{url}/clips/{ids[0]}", json={"status": "ready", "duration": 4.5})
    assert (changed.json()["status"], changed.json()["duration"]) == ("ready", 4.5)
    order = await daemon.service.put(f"{url}/clips/order", json={"clip_ids": [ids[2], ids[0]]})
    assert [c["id"] for c in order.json()["clips"]] == [ids[2], ids[0], ids[1]]
    removed = await daemon.service.delete(f"{url}/clips/{ids[1]}?save=now")
    assert removed.json()["saved"] is True
    await wait_for(
        lambda: editor.view.project is not None and editor.view.project["title"] == "Renamed", "title", WAIT
    )
    await wait_for(
        lambda: [c["id"] for c in editor.view.ordered("clips")] == [ids[2], ids[0]], "the order", WAIT
    )
    stored = await daemon.stored(project_id)
    assert [c["id"] for c in stored["clips"]] == [ids[2], ids[0]]
    assert stored["project"]["title"] == "Renamed"


async def test_refusals_name_what_is_wrong_and_change_nothing(daemon: LocalDaemon) -> None:
    """An unknown project, a bad id, an unknown clip, a bad field, an unknown path, bad JSON."""
    project_id = await daemon.project()
    missing = new_id()
    cases = [
        (await daemon.service.post(f"/v1/projects/{missing}/clips", json={}), 404, "does not exist"),
        (await daemon.service.post("/v1/projects/nope/clips", json={}), 400, "project_id: must be a UUID"),
        (
            await daemon.service.patch(f"/v1/projects/{project_id}/clips/{missing}", json={"prompt": "x"}),
            404,
            "clip",
        ),
        (await daemon.service.patch(f"/v1/projects/{project_id}", json={"colour": "red"}), 400, "colour"),
        (
            await daemon.service.post(f"/v1/projects/{project_id}/clips", json={"order_index": -1}),
            400,
            "order_index",
        ),
        (await daemon.service.get("/v1/nothing"), 404, "no such path"),
        (await daemon.service.post("/v1/projects", content=b"{not json"), 400, "not valid JSON"),
        (
            await daemon.service.post("/v1/projects", content=b"[" * 100_000 + b"]" * 100_000),
            400,
            "the body is not valid JSON: nested too deep",
        ),
        (await daemon.service.get("/v1/projects", params={"user_id": "bob"}), 400, "user_id: must be a UUID"),
        (
            await daemon.service.put(f"/v1/projects/{project_id}/clips/order", json={"clip_ids": []}),
            400,
            "clip_ids",
        ),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, answer.text
        assert words in answer.json()["message"], answer.text
    view = (await daemon.service.get(f"/v1/projects/{project_id}")).json()
    assert (view["seq"], view["clips"]) == (0, [])


async def test_deleting_a_project_closes_its_editors_with_4404(
    daemon: LocalDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine re-reads the project, finds nothing, and closes its editors. Edits not saved yet are
    dropped with a warning: the project was deleted on purpose, nothing failed (no ERROR line)."""
    project_id = await daemon.project()
    editor = await daemon.editor(project_id)
    await editor.patch("projects", project_id, {"title": "never saved"})
    with caplog.at_level(logging.INFO, logger="syncd"):
        assert (await daemon.service.delete(f"/v1/projects/{project_id}")).status_code == 200
        await wait_for(lambda: editor.state == "closed", "the editor to be closed", WAIT)
    assert editor.close_code == 4404
    dropped = [r for r in caplog.records if "is gone" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in dropped] == [
        (logging.WARNING, f"project {project_id} is gone: 1 unsaved edits dropped")
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_daemon_keeps_no_editor_or_service_session_after_the_idle_timeout(
    daemon: LocalDaemon,
) -> None:
    """A project opened only by a service call is closed after the idle timeout, like an editor's."""
    project_id = await daemon.project()
    await daemon.service.post(f"/v1/projects/{project_id}/clips?save=now", json={"prompt": "x"})
    assert project_id in daemon.sup.host.engine.open_projects()
    await wait_for(
        lambda: project_id not in daemon.sup.host.engine.open_projects(), "the project to close", WAIT
    )
    assert [c["prompt"] for c in (await daemon.stored(project_id))["clips"]] == ["x"]


def _nested(levels: int) -> object:
    """``levels`` levels of objects: ``{"k": {"k": … 1}}``."""
    value: object = 1
    for _ in range(levels):
        value = {"k": value}
    return value


async def test_a_field_an_editor_could_not_send_back_is_refused(daemon: LocalDaemon) -> None:
    """A field's value nests at most FIELD_DEPTH levels at every door, so that editors get back what they
    could send: the deepest value the API takes goes back through an editor's patch unchanged."""
    project_id = await daemon.project(scenes=1)
    too_deep = {"settings": _nested(FIELD_DEPTH + 1)}
    path = "settings" + ".k" * FIELD_DEPTH
    refused = [
        (await daemon.anonymous.post("/v1/projects", json={"title": "Deep", **too_deep}), "projects." + path),
        (await daemon.service.patch(f"/v1/projects/{project_id}", json=too_deep), "set." + path),
        (
            await daemon.service.post(
                f"/v1/projects/{project_id}/clips", json={"metadata": _nested(FIELD_DEPTH + 1)}
            ),
            "row.metadata" + ".k" * FIELD_DEPTH,
        ),
    ]
    for answer, where in refused:
        assert answer.status_code == 400, answer.text
        assert (
            answer.json()["message"]
            == f"{where}: nested deeper than {FIELD_DEPTH} levels of arrays and objects"
        )

    deepest = {"settings": _nested(FIELD_DEPTH)}
    assert (
        await daemon.service.patch(f"/v1/projects/{project_id}?save=now", json=deepest)
    ).status_code == 200
    editor = await daemon.editor(project_id)
    shown = editor.view.project
    assert shown is not None
    assert shown["settings"] == deepest["settings"]
    await editor.patch("projects", project_id, {"settings": shown["settings"], "title": "Back"})
    assert (await daemon.service.get(f"/v1/projects/{project_id}")).json()["project"]["title"] == "Back"


async def test_the_project_list_shows_a_title_edited_but_not_saved_yet(
    slow_saving_daemon: LocalDaemon,
) -> None:
    """A rename waiting for the debounce is what the list shows, as editors see it, not the stored title."""
    daemon = slow_saving_daemon
    project_id = await daemon.project("Before")
    untouched = await daemon.project("Untouched")
    editor = await daemon.editor(project_id)
    await editor.patch("projects", project_id, {"title": "After"})
    assert (await daemon.stored(project_id))["project"]["title"] == "Before", "not saved yet"
    for client in (daemon.service, daemon.anonymous):
        listed = {row["id"]: row for row in (await client.get("/v1/projects")).json()}
        assert listed[project_id]["title"] == "After"
        assert "version" not in listed[project_id]
        assert listed[untouched]["title"] == "Untouched"
    inspector = (await daemon.anonymous.get("/v1/inspector/projects")).json()["projects"]
    assert {row["id"]: row["title"] for row in inspector}[project_id] == "After"
