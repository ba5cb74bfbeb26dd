"""Edits wait for room on the state directory's disk (syncd.room): the daemon stays up on a full disk,
editors keep their edits, and those go on once there is room."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.client import EditorClient
from syncd.core.ids import ConnId
from syncd.core.inputs import Flush
from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from syncd.room import LOOK_EVERY, MAX_WAITING, EditRoom
from syncd.servicekey import service_key
from syncd.wire import CLOSE_TRY_LATER
from tests.support.daemon import DaemonProcess
from tests.support.disk import fill, small_tmpfs
from tests.support.editor import RawEditors

MIB = 1024 * 1024
SCENE = str(DEMO_SCENES[0]["id"])
A, B = ConnId("c1"), ConnId("c2")


class Disk:
    """Free bytes as a number the test sets, counting how often it was asked."""

    def __init__(self, free: float) -> None:
        self.free = free
        self.looks = 0

    def __call__(self) -> float:
        self.looks += 1
        return self.free


def flush(mid: int) -> tuple[Flush]:
    return (Flush(mid),)


def test_with_room_every_edit_goes_on_and_the_disk_is_looked_at_once_a_second() -> None:
    disk = Disk(100 * MIB)
    room = EditRoom(disk, 16 * MIB)
    assert [room.admits(t) for t in (0.0, 0.2, 0.9, 1.0, 1.5)] == [True] * 5
    assert disk.looks == 2  # at 0.0 and at 1.0


def test_below_the_reserve_edits_wait_in_order_until_a_look_finds_room() -> None:
    disk = Disk(4 * MIB)
    room = EditRoom(disk, 16 * MIB)
    assert room.admits(0.0) is False
    for conn, project_id, mid in ((A, "p", 1), (B, "p", 1), (A, "q", 2)):
        assert room.hold(conn, project_id, flush(mid)) is True
    assert room.to_tell(A) is True
    disk.free = 64 * MIB
    assert room.release(0.5) is None  # freed, but not looked at yet
    assert room.admits(0.6) is False  # nothing overtakes what waits
    released = room.release(1.0)
    assert released is not None
    assert [(w.conn, w.project_id, w.mutations) for w in released] == [
        (A, "p", flush(1)),
        (B, "p", flush(1)),
        (A, "q", flush(2)),
    ]
    assert room.waiting == []
    assert room.admits(1.1) is True
    assert room.to_tell(A) is True  # a wait after this one is told again


def test_a_closed_connection_s_edits_stop_waiting() -> None:
    room = EditRoom(Disk(0), 16 * MIB)
    room.admits(0.0)
    room.hold(A, "p", flush(1))
    room.hold(B, "p", flush(1))
    assert room.to_tell(A) is True
    assert room.to_tell(B) is True
    assert room.to_tell(A) is False  # once
    room.drop(A)
    assert [w.conn for w in room.waiting] == [B]
    assert room.to_tell(A) is True  # back, and waiting again: told again
    assert room.to_tell(B) is False


def test_edits_past_the_limit_are_not_kept() -> None:
    room = EditRoom(Disk(0), 16 * MIB)
    room.admits(0.0)
    assert room.hold(A, "p", [Flush(i) for i in range(1, MAX_WAITING)]) is True
    assert room.hold(B, "p", flush(1)) is True
    assert room.hold(B, "p", flush(2)) is False
    assert len(room.waiting) == 2


def test_no_reserve_never_looks_and_an_unknown_free_space_counts_as_room() -> None:
    disk = Disk(0)
    assert EditRoom(disk, 0).admits(0.0) is True
    assert disk.looks == 0
    unknown = EditRoom(Disk(math.nan), 16 * MIB)
    assert unknown.admits(0.0) is True
    assert "unknown free" in unknown.message()


def test_the_message_says_how_much_is_free_and_needed() -> None:
    room = EditRoom(Disk(2.5 * MIB), 16 * MIB)
    room.admits(0.0)
    assert (
        room.message()
        == "the daemon's disk is full (2.5 MiB free, under the 16 MiB it keeps for its journal)"
    )


def waiting_for_room(metrics: str) -> float:
    """The gauge of edits held for room, from a /metrics text."""
    return next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("syncd_edits_waiting_for_room ")
    )


# -- a real daemon on a small file system that fills up ------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """32 MiB: twice the default reserve, so the daemon starts with room and takes edits."""
    with small_tmpfs(tmp_path / "disk", 32 * MIB) as mount_point:
        yield mount_point


async def test_on_a_full_disk_an_edit_waits_in_its_editor_and_goes_on_once_there_is_room(
    small_disk: Path,
) -> None:
    daemon = DaemonProcess(small_disk / "state").start()
    assert daemon.proc is not None
    try:
        async with (
            EditorClient(daemon.url, DEMO_PROJECT_ID) as typing,
            EditorClient(daemon.url, DEMO_PROJECT_ID) as watching,
        ):
            filler = small_disk / "filler"
            fill(filler)
            mid = typing.send_patch("scenes", SCENE, {"heading": "Typed on a full disk"})
            told = await typing.next_frame("error", timeout=10)
            assert (told["code"], told["mid"]) == ("unavailable", None)
            assert told["message"].startswith("the daemon's disk is full (0.0 MiB free, under the 16 MiB")
            assert told["message"].endswith("your edits wait in this editor until there is room")
            with pytest.raises(TimeoutError):
                await typing.wait_ack(mid, timeout=2 * LOOK_EVERY)
            assert daemon.proc.poll() is None, "the daemon stopped"
            assert watching.view.scenes[SCENE]["heading"] == DEMO_SCENES[0]["heading"]
            headers = {"Authorization": f"Bearer {service_key(small_disk / 'state')}"}
            async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
                refused = await api.patch(f"/v1/projects/{DEMO_PROJECT_ID}", json={"title": "Renamed"})
                assert refused.status_code == 503, refused.text
                assert "disk is full" in refused.text
                assert waiting_for_room((await api.get("/metrics")).text) == 1
                filler.unlink()
            ack = await typing.wait_ack(mid, timeout=10)
            await watching.wait_until(
                lambda: watching.view.scenes[SCENE]["heading"] == "Typed on a full disk", timeout=10
            )
            await typing.wait_saved(ack.seq, timeout=10)
            async with httpx.AsyncClient(base_url=daemon.http, timeout=10) as api:
                assert waiting_for_room((await api.get("/metrics")).text) == 0
        assert daemon.proc.poll() is None, "the daemon stopped"
    finally:
        daemon.stop()


async def test_past_the_limit_of_waiting_edits_the_connection_that_sends_one_more_is_closed_1013(
    small_disk: Path,
) -> None:
    unlimited = {"SYNCD_GATEWAY__MUTATION_RATE": "1000000", "SYNCD_GATEWAY__MUTATION_BURST": "1000000"}
    daemon = DaemonProcess(small_disk / "state", env=unlimited).start()
    assert daemon.proc is not None
    editors = RawEditors(timeout=20)
    try:
        editor = await editors.open(daemon.url)
        await editor.join(DEMO_PROJECT_ID)
        fill(small_disk / "filler")
        for mid in range(1, MAX_WAITING + 2):
            await editor.send({"type": "flush", "mid": mid})
        code, received = await editor.closed()
        errors = [(f["code"], f["mid"], f["message"][:25]) for f in received if f["type"] == "error"]
        assert errors == [("unavailable", None, "the daemon's disk is full")]
        assert not [f for f in received if f["type"] == "ack"]
        assert code == CLOSE_TRY_LATER
        assert editor.ws.close_reason is not None
        assert editor.ws.close_reason.endswith("too many edits wait")
        assert daemon.proc.poll() is None, "the daemon stopped"
    finally:
        await editors.close()
        daemon.stop()
