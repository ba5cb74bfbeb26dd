"""``syncd backup``: a copy of a running daemon's state directory that a daemon starts from, with every
edit acknowledged before it (saved, or only in the journal) and the stored files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from syncd.client import EditorClient
from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from syncd.servicekey import service_key
from tests.support.daemon import DaemonProcess, run_syncd

SLOW_SAVES = {"SYNCD_DEBOUNCE__QUIET": "60", "SYNCD_DEBOUNCE__MAX_WAIT": "120"}
SAVED, JOURNALED = (scene["id"] for scene in DEMO_SCENES[:2])


async def test_a_backup_taken_while_the_daemon_runs_starts_a_daemon_with_every_acknowledged_edit(
    tmp_path: Path,
) -> None:
    state, copy = tmp_path / "state", tmp_path / "copy"
    daemon = DaemonProcess(state, env=SLOW_SAVES).start()
    try:
        async with EditorClient(daemon.url, DEMO_PROJECT_ID) as editor:
            await editor.patch("scenes", SAVED, {"heading": "Saved before the backup"})
            await editor.wait_saved((await editor.flush()).seq)
            await editor.patch("scenes", JOURNALED, {"heading": "Only in the journal"})
        headers = {"Authorization": f"Bearer {service_key(state)}"}
        async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
            path = f"projects/{DEMO_PROJECT_ID}/clips/kept.mp4"
            put = await api.put(
                f"/v1/storage/clips/{path}", content=b"\x00mp4", headers={"Content-Type": "video/mp4"}
            )
        assert put.status_code == 201, put.text
        made = run_syncd(state, "backup", str(copy))
        assert made.returncode == 0, made.stderr
    finally:
        daemon.kill()  # what the running daemon does after the backup is no part of the copy
    assert made.stdout.splitlines()[-1] == "files: 1 stored files"
    restored = DaemonProcess(copy).start()
    try:
        async with EditorClient(restored.url, DEMO_PROJECT_ID) as editor:
            headings = {row["id"]: row["heading"] for row in editor.view.scenes.values()}
        assert (headings[SAVED], headings[JOURNALED]) == ("Saved before the backup", "Only in the journal")
        signed = urlsplit(put.json()["url"])
        async with httpx.AsyncClient(timeout=10) as http:
            got = await http.get(f"{restored.http}{signed.path}?{signed.query}")
        assert got.content == b"\x00mp4"  # the same key signs in the copy
    finally:
        restored.stop()


def test_a_backup_goes_only_to_a_new_or_empty_folder_and_from_a_state_directory(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something").write_text("x")
    state = tmp_path / "state"
    run_syncd(state, "service-key")
    assert run_syncd(state, "project", "list").returncode == 0
    refused = run_syncd(state, "backup", str(taken))
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        f"syncd: backup: {taken} exists and is not an empty folder; name a new one",
    )
    empty = run_syncd(tmp_path / "nothing", "backup", str(tmp_path / "copy"))
    assert empty.returncode == 1
    assert "holds no syncd state" in empty.stderr
