"""The aiohttp gateway: large frames, plain HTTP on the editor path, wrong methods; its building blocks."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from syncd.adapters.gateway import text_frame
from syncd.core.ids import RowId
from syncd.core.inputs import SideChange
from syncd.core.schema import SideTable
from syncd.errors import ConfigError, EditRejected
from syncd.records import export_step, validate_new, validate_set
from syncd.servicekey import service_key
from syncd.sides import SideRows
from syncd.storage import LocalFiles, check_expiry, check_upload, object_path
from tests.http.conftest import WAIT, LocalDaemon, new_id
from tests.support.waiting import wait_for


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70_000])
def test_a_text_frame_carries_its_length_as_rfc_6455_says(size: int) -> None:
    """7-bit, 16-bit and 64-bit lengths, unmasked, FIN and opcode 1."""
    frame = text_frame(b"x" * size)
    assert frame[0] == 0x81
    if size < 126:
        assert (frame[1], len(frame)) == (size, size + 2)
    elif size < 65536:
        assert (frame[1], int.from_bytes(frame[2:4], "big"), len(frame)) == (126, size, size + 4)
    else:
        assert (frame[1], int.from_bytes(frame[2:10], "big"), len(frame)) == (127, size, size + 10)


async def test_frames_over_64_kib_reach_editors_whole(daemon: LocalDaemon) -> None:
    """A 90,000-character script goes out in a change and in the next editor's snapshot."""
    project_id = await daemon.project()
    editor = await daemon.editor(project_id)
    script = "a" * 90_000
    answer = await daemon.service.patch(f"/v1/projects/{project_id}", json={"script": script})
    assert answer.status_code == 200, answer.text
    await wait_for(lambda: (editor.view.project or {}).get("script") == script, "the long script", WAIT)
    late = await daemon.editor(project_id)
    assert (late.view.project or {}).get("script") == script


async def test_editors_that_read_have_no_writer_task(daemon: LocalDaemon) -> None:
    """A joining editor's snapshot, the changes and the acks go straight to its socket while it reads:
    no editor gets a writer task (one for every editor cost each of them about 1 KB)."""
    project_id = await daemon.project(title="Film")
    author = await daemon.editor(project_id)
    reader = await daemon.editor(project_id)
    await author.patch("projects", project_id, {"title": "Cut"})
    await wait_for(lambda: (reader.view.project or {}).get("title") == "Cut", "the change", WAIT)
    writers = [task for task in asyncio.all_tasks() if task.get_name().startswith("syncd.gateway.write.")]
    assert writers == []


async def test_plain_http_on_the_editor_path_and_wrong_methods_answer_json(daemon: LocalDaemon) -> None:
    """GET /v1/editor without an upgrade is 426; a method a route does not take is 405, both in JSON."""
    plain = await daemon.anonymous.get("/v1/editor")
    wrong = await daemon.anonymous.put("/healthz")
    assert (plain.status_code, plain.json()["error"]) == (426, "bad_request")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "bad_request")
    assert wrong.headers["Allow"] == "GET, HEAD"
    assert wrong.json()["message"] == "PUT is not allowed on /healthz (only GET, HEAD)"
    assert plain.headers["Server"] == "syncd"


def test_the_service_key_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    """A key that others may read, or that is not a syncd key, stops the start with a clear message."""
    key = service_key(tmp_path)
    assert key == service_key(tmp_path)
    path = tmp_path / "service.key"
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        service_key(tmp_path)
    os.chmod(path, 0o600)
    path.write_text("something else\n")
    with pytest.raises(ConfigError, match="not a syncd service key"):
        service_key(tmp_path)
    with pytest.raises(ConfigError, match="cannot make or read"):
        service_key(path / "inside-a-file")


def test_storage_rules_refuse_what_the_buckets_refuse() -> None:
    """Expiry bounds, paths, MIME types with parameters, and signatures."""
    for bad in (0, -5, True, "60", 8 * 24 * 3600):
        with pytest.raises(EditRejected):
            check_expiry(bad)
    pid = new_id()
    assert check_upload("clips", f"projects/{pid}/clips/a.mp4", "video/mp4; codecs=avc1", 10) == pid
    with pytest.raises(EditRejected, match="not accepted"):
        check_upload("exports", f"projects/{pid}/final/a.png", "image/png", 10)
    with pytest.raises(EditRejected, match="not accepted"):
        check_upload("clips", f"projects/{pid}/clips/a", "video/", 10)
    assert object_path("audio", pid.upper(), "a.mp3") == f"projects/{pid}/audio/a.mp3"
    files = LocalFiles(Path("/nonexistent"), "secret", "http://x")
    path = f"projects/{pid}/clips/a.mp4"
    good = files.sign("clips", path, int(time.time()) + 60)
    files.verify("clips", path, good, time.time())
    for token, code in (("", "unauthorized"), ("abc.def", "unauthorized"), (good + "x", "unauthorized")):
        with pytest.raises(EditRejected) as caught:
            files.verify("clips", path, token, time.time())
        assert caught.value.code == code


def test_row_checks_name_the_field() -> None:
    """Unknown fields, wrong types, empty updates, and export steps."""
    with pytest.raises(EditRejected, match=r"exports\.progress"):
        validate_set("exports", {"progress": 2})
    with pytest.raises(EditRejected, match="name at least one field"):
        validate_set("voices", {})
    with pytest.raises(EditRejected, match="voices"):
        validate_new("voices", {"pitch": 1})
    export_step({"status": "rendering"}, {"progress": 0.5})
    export_step({"status": "rendering"}, {"status": "rendering"})
    export_step({"status": "queued"}, {"status": "failed"})
    with pytest.raises(EditRejected, match="done to failed"):
        export_step({"status": "done"}, {"status": "failed"})


def test_side_rows_diff_a_fresh_read() -> None:
    """A re-read yields the inserts, updates and deletes that editors have not seen; unchanged rows none."""
    rows = SideRows()
    assert rows.replace("p", {}) == []
    assert rows.change("p", "exports", "insert", {"id": "e1"}) is None
    rows.load("p", {"exports": [{"id": "e1", "status": "queued"}, {"id": "e2", "status": "done"}]})
    assert rows.change("p", "exports", "update", {"id": "e2", "status": "done"}) is None
    assert rows.change("p", "audio_files", "delete", {"id": "nope"}) is None
    fresh: dict[SideTable, list[dict[str, Any]]] = {
        "exports": [{"id": "e1", "status": "rendering"}],
        "audio_files": [{"id": "a1", "kind": "music"}],
    }
    changes = rows.replace("p", fresh)
    assert changes == [
        SideChange("exports", "delete", RowId("e2")),
        SideChange("exports", "update", RowId("e1"), set={"status": "rendering"}),
        SideChange("audio_files", "insert", RowId("a1"), row={"id": "a1", "kind": "music"}),
    ]
    assert "p" in rows
    rows.drop("p")
    assert "p" not in rows


async def test_once_the_daemon_stops_accepting_it_takes_no_more_writes(daemon: LocalDaemon) -> None:
    """After ``stop_accepting`` a write on an open connection is 503 and changes nothing; reads still work."""
    project_id = await daemon.project()
    assert (await daemon.service.get(f"/v1/projects/{project_id}")).status_code == 200  # keep-alive
    daemon.sup.gateway.stop_accepting()
    refused = await daemon.service.post(f"/v1/projects/{project_id}/clips", json={"prompt": "late"})
    assert (refused.status_code, refused.json()["error"]) == (503, "unavailable")
    view = await daemon.service.get(f"/v1/projects/{project_id}")
    assert view.json()["clips"] == []


async def test_the_frontend_may_call_the_api_from_its_own_origin(daemon: LocalDaemon) -> None:
    """A CORS preflight is answered 204, and API answers allow any origin (the token is a header)."""
    preflight = await daemon.anonymous.options(
        "/v1/projects", headers={"Origin": "http://studio.test", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    upload = await daemon.anonymous.options(f"/v1/storage/clips/projects/{new_id()}/clips/a.mp4")
    assert upload.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    created = await daemon.anonymous.post(
        "/v1/projects", json={"title": "x"}, headers={"Origin": "http://studio.test"}
    )
    assert created.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in (await daemon.anonymous.get("/healthz")).headers


async def test_a_websocket_opened_on_another_path_is_told_where_editors_connect(daemon: LocalDaemon) -> None:
    """At ``/`` it got the inspector's page, which WebSocket libraries report only as "HTTP 200"."""
    for path in ("/", "/v1", "/projects/x"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{daemon.sup.gateway.port}{path}", open_timeout=WAIT):
                pass
        answer = refused.value.response
        assert (answer.status_code, json.loads(answer.body)) == (
            404,
            {"error": "not_found", "message": "editors open their WebSocket at /v1/editor"},
        )
    assert (await daemon.anonymous.get("/")).status_code == 200  # the inspector still opens in a browser
