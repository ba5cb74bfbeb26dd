"""What one project may cost the daemon: a slow editor's snapshots, the change history, presence.

Each bound is a setting (docs/protocol.md §11); these tests set it small and show that the daemon
keeps to it, where it used to spend without limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from syncd.client import EditorClient
from syncd.wire import CLOSE_NOT_READING
from tests.e2e.conftest import NO_SAVES, WAIT, DaemonFactory
from tests.support.daemon import DaemonProcess
from tests.support.editor import Frame, RawEditor, RawEditors

EDIT_BYTES = 30_000
MAX_EDITS = 1000
"""A cap far above what fills the socket buffers between daemon and editor (a few MB)."""
MORE_EDITS = 60
"""Edits after the slow editor's first overflow: each used to make (and drop) a snapshot of its own."""

UNLIMITED = 100_000
"""A mutation rate and burst out of the way, for the daemon and the clients that pace themselves to it."""

SLOW_ENV = {
    **NO_SAVES,
    "SYNCD_GATEWAY__SEND_QUEUE_FRAMES": "8",
    "SYNCD_GATEWAY__SEND_QUEUE_BYTES": str(64 * 1024),
    "SYNCD_GATEWAY__MUTATION_RATE": str(UNLIMITED),
    "SYNCD_GATEWAY__MUTATION_BURST": str(UNLIMITED),
}


@pytest.fixture
async def editors() -> AsyncIterator[RawEditors]:
    """Raw editor sockets, plain or recording, closed after the test."""
    opened = RawEditors(WAIT)
    yield opened
    await opened.close()


def _overflows(daemon: DaemonProcess, session: str) -> int:
    """How many times the daemon logged dropping the backlog of connection ``session``."""
    return sum("is not reading" in line and f"conn={session} " in line for line in daemon.stderr.splitlines())


async def _stall(daemon: DaemonProcess, author: EditorClient, slow: RawEditor, more: int) -> int:
    """Edit until ``slow`` (reading nothing) overflowed, then ``more`` edits, return the last seq."""
    scenes = [row["id"] for row in author.view.ordered("scenes")]
    mids: list[int] = []
    for i in range(MAX_EDITS):
        body = f"{i:06d} " + "x" * EDIT_BYTES
        mids.append(author.send_patch("scenes", scenes[i % len(scenes)], {"body": body}))
        if len(mids) > 4:
            await author.wait_ack(mids[-5])
        if _overflows(daemon, slow.welcome["session"]) >= 1:
            break
    else:
        raise AssertionError(f"{MAX_EDITS} edits of {EDIT_BYTES} bytes did not overflow the slow editor")
    for i in range(more):
        body = f"more {i:03d} " + "y" * EDIT_BYTES
        mids.append(author.send_patch("scenes", scenes[i % len(scenes)], {"body": body}))
    return (await author.wait_ack(mids[-1])).seq


async def test_an_editor_that_never_reads_costs_one_pending_snapshot(
    start_daemon: DaemonFactory, editors: RawEditors
) -> None:
    """Past its first overflow a non-reading editor gets no snapshot per change; reading, a current one."""
    daemon = start_daemon(SLOW_ENV)
    slow = await editors.open(daemon.url, max_queue=1)
    await slow.join(daemon.project_id)
    async with EditorClient(
        daemon.url, daemon.project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED
    ) as author:
        last = await _stall(daemon, author, slow, MORE_EDITS)
        await author.wait_seq(last, timeout=WAIT)
    # Every change after the first overflow used to overflow again and build a whole snapshot. Now
    # another one comes only after the writer got to the pending snapshot, which it does only as long
    # as the socket buffers take what was queued before it.
    assert _overflows(daemon, slow.welcome["session"]) <= MORE_EDITS // 6

    # Reading again, it gets what the socket held, then a snapshot built when the writer got to it (so
    # newer than anything before it) and the changes after that snapshot, up to the last one.
    frames: list[Frame] = []
    while not frames or frames[-1]["seq"] < last:
        frame = await slow.recv()
        if frame["type"] != "presence":
            assert frame["type"] in ("change", "snapshot"), frame
            frames.append(frame)
    kinds = [frame["type"] for frame in frames]
    at = len(kinds) - 1 - kinds[::-1].index("snapshot")
    assert all(frame["seq"] < frames[at]["seq"] for frame in frames[:at])
    assert [frame["seq"] for frame in frames[at + 1 :]] == list(range(frames[at]["seq"] + 1, last + 1))


async def test_an_editor_over_its_snapshot_budget_is_closed_with_1008(
    start_daemon: DaemonFactory, editors: RawEditors
) -> None:
    """A snapshot that would pass ``resend_bytes`` is not sent: the connection is closed as not reading."""
    daemon = start_daemon({**SLOW_ENV, "SYNCD_GATEWAY__RESEND_BYTES": "1000"})
    slow = await editors.open(daemon.url, max_queue=1)
    await slow.join(daemon.project_id)
    async with EditorClient(
        daemon.url, daemon.project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED
    ) as author:
        await _stall(daemon, author, slow, 0)
    code, frames = await slow.closed(timeout=4 * WAIT)
    assert code == CLOSE_NOT_READING
    assert {frame["type"] for frame in frames} <= {"change", "presence"}
    assert "editor reads too slowly" in daemon.stderr


async def test_a_resume_from_before_the_history_byte_budget_gets_a_snapshot(
    start_daemon: DaemonFactory, editors: RawEditors
) -> None:
    """Five 30 kB changes pass a 100 kB history: a resume from before them gets a snapshot, not changes."""
    daemon = start_daemon({**NO_SAVES, "SYNCD_ENGINE__HISTORY_BYTES": "100000"})
    away = await editors.open(daemon.url)
    before = await away.join(daemon.project_id)
    epoch = away.welcome["epoch"]
    await away.close()
    async with EditorClient(
        daemon.url, daemon.project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED
    ) as author:
        scene = author.view.ordered("scenes")[0]["id"]
        for i in range(5):
            last = (await author.patch("scenes", scene, {"body": f"{i} " + "x" * EDIT_BYTES})).seq
    back = await editors.open(daemon.url)
    await back.hello(daemon.project_id, resume=(epoch, before["seq"] + 3))
    await back.expect("welcome")
    assert (await back.expect("change"))["seq"] == before["seq"] + 4  # still kept
    await back.close()
    again = await editors.open(daemon.url)
    await again.hello(daemon.project_id, resume=(epoch, before["seq"]))
    await again.expect("welcome")
    snapshot = await again.expect("snapshot")
    assert snapshot["seq"] == last


async def test_presence_is_coalesced_and_capped(start_daemon: DaemonFactory, editors: RawEditors) -> None:
    """Joins within the interval send no presence to those already in; each newcomer gets a capped one."""
    daemon = start_daemon(
        {**NO_SAVES, "SYNCD_ENGINE__PRESENCE_INTERVAL": "60", "SYNCD_ENGINE__PRESENCE_LIMIT": "5"}
    )
    first = await editors.record(daemon.url)
    await first.join(daemon.project_id)
    joined = [first.client_id]
    for _ in range(12):
        newcomer = await editors.open(daemon.url)
        await newcomer.join(daemon.project_id)
        joined.append(newcomer.client_id)
        presence = await newcomer.recv()
        assert presence["type"] == "presence"
        assert presence["count"] == len(joined)
        assert [e["client_id"] for e in presence["editors"]] == joined[:5]
    # Frames keep their order: once the pong is in, every presence sent before it is too.
    await first.send({"type": "ping", "t": 1})
    await first.wait(lambda e: bool(e.of_type("pong")), "the pong")
    # Twelve joins used to send the first editor twelve more presence frames, each longer than the last.
    assert [len(f["editors"]) for f in first.of_type("presence")] == [1]
