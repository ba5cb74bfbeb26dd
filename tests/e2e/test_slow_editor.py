"""An editor that stops reading overflows only its own send queue, and gets a snapshot when it reads again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from syncd.client import EditorClient
from tests.e2e.conftest import NO_SAVES, WAIT, DaemonFactory, RawFactory
from tests.support.editor import Frame
from tests.support.waiting import wait_for

QUEUE_FRAMES = 8
QUEUE_BYTES = 256 * 1024
EDIT_BYTES = 30_000
MAX_EDITS = 1000
"""A cap far above what fills the socket buffers between daemon and editor (a few MB)."""
REPLAY_EDITS = 300
"""Edits an editor misses: 9 MB of changes, more than the socket buffers hold (about 4 MB here)."""

UNLIMITED = 100_000
"""A mutation rate and burst out of the way, for the daemon and the clients that pace themselves to it."""

SLOW_ENV = {
    **NO_SAVES,
    "SYNCD_GATEWAY__SEND_QUEUE_FRAMES": str(QUEUE_FRAMES),
    "SYNCD_GATEWAY__SEND_QUEUE_BYTES": str(QUEUE_BYTES),
    "SYNCD_GATEWAY__MUTATION_RATE": str(UNLIMITED),
    "SYNCD_GATEWAY__MUTATION_BURST": str(UNLIMITED),
    # The whole replay stays in the history, so a resume gets changes, not a snapshot at once.
    "SYNCD_ENGINE__HISTORY_BYTES": str(64 * 1024 * 1024),
}


def _overflows(stderr: str, session: str) -> int:
    """How many times the daemon logged dropping the backlog of connection ``session``."""
    return sum("is not reading" in line and f"conn={session} " in line for line in stderr.splitlines())


def _apply(scenes: dict[str, dict[str, Any]], change: Frame) -> None:
    assert change["table"] == "scenes"
    assert change["op"] == "update"
    scenes[change["id"]].update(change["set"])


async def test_a_slow_editor_does_not_hold_up_the_others_and_catches_up_from_a_snapshot(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """While one editor does not read, the others get every change; the slow one then gets a snapshot."""
    daemon = start_daemon(SLOW_ENV)
    project_id = daemon.project_id
    # A one-frame incoming queue: once it is full the client stops reading the socket, and what the
    # daemon sends piles up in the socket buffers, then in the daemon's send queue.
    slow = await raw_editor(daemon.url, max_queue=1)
    await slow.join(project_id)
    slow_session = slow.welcome["session"]

    async with (
        EditorClient(daemon.url, project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED) as author,
        EditorClient(daemon.url, project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED) as reader,
    ):
        scenes = [row["id"] for row in author.view.ordered("scenes")]
        sessions = {author.session, reader.session}
        mids: list[int] = []

        async def edit_until(overflows: int) -> None:
            """Edit (at most 4 unacknowledged) until the slow editor's queue overflowed this many times."""
            for i in range(MAX_EDITS):
                body = f"{len(mids):06d} " + "x" * EDIT_BYTES
                mids.append(author.send_patch("scenes", scenes[i % len(scenes)], {"body": body}))
                if len(mids) > 4:
                    await author.wait_ack(mids[-5])
                if _overflows(daemon.stderr, slow_session) >= overflows:
                    return
            raise AssertionError(f"{MAX_EDITS} edits of {EDIT_BYTES} bytes did not overflow the slow editor")

        async def edit_more(count: int) -> None:
            """Edit ``count`` more times; the slow editor's pending snapshot stands for all of it."""
            for i in range(count):
                body = f"{len(mids):06d} " + "y" * EDIT_BYTES
                mids.append(author.send_patch("scenes", scenes[i % len(scenes)], {"body": body}))
                if len(mids) > 4:
                    await author.wait_ack(mids[-5])

        await edit_until(1)
        # The slow editor edits too. Its ack is queued once its edit is in the outbox, which is before the
        # author's next edit is (the outbox commits in order); then it waits there through an overflow.
        slow_mid = await slow.patch("scenes", scenes[0], {"heading": "sent while not reading"})
        await author.wait_until(lambda: author.view.scenes[scenes[0]]["heading"] == "sent while not reading")
        await author.patch("scenes", scenes[1], {"heading": "after the slow edit"})
        await edit_more(20)
        acks = await asyncio.gather(*(author.wait_ack(mid) for mid in mids))
        last = max(ack.seq for ack in acks)

        # The others got every change, in order, without a gap, a resync or an overflow of their own.
        await reader.wait_seq(last, timeout=WAIT)
        await author.wait_seq(last, timeout=WAIT)
        for editor in (reader, author):
            changes: list[Frame] = []
            while not changes or changes[-1]["seq"] < last:
                changes.append(await editor.next_frame("change", timeout=WAIT))
            assert [change["seq"] for change in changes] == list(range(1, last + 1))
            assert editor.resyncs == 0
        slow_change = next(change for change in changes if change["client_id"] == slow.client_id)
        assert slow_change["mid"] == slow_mid
        assert all(_overflows(daemon.stderr, session or "") == 0 for session in sessions)
        final = {row_id: dict(row) for row_id, row in reader.view.scenes.items()}

        # The slow editor reads again: a snapshot replaced its dropped backlog; the stream goes on from it.
        frames: list[Frame] = []
        acked: list[Frame] = []
        while not acked or not frames or frames[-1]["seq"] < last:
            try:
                frame = await slow.recv()
            except TimeoutError:
                seen = [(f["type"], f["seq"]) for f in frames[-3:]]
                pytest.fail(f"the slow editor stalled: acks {acked}, last frames {seen}, last seq {last}")
            if frame["type"] == "ack":
                acked.append(frame)
            elif frame["type"] != "presence":
                assert frame["type"] in ("change", "snapshot"), frame
                frames.append(frame)
        await slow.ws.close()
        assert [(ack["mid"], ack["seq"]) for ack in acked] == [(slow_mid, slow_change["seq"])]
        kinds = [frame["type"] for frame in frames]
        assert "snapshot" in kinds
        at = len(kinds) - 1 - kinds[::-1].index("snapshot")
        snapshot, after = frames[at], frames[at + 1 :]
        before = [frame["seq"] for frame in frames[:at] if frame["type"] == "change"]
        assert snapshot["seq"] > max(before, default=0), "the snapshot is newer than what the editor had read"
        assert [frame["seq"] for frame in after] == list(range(snapshot["seq"] + 1, last + 1))
        scenes_seen = {row["id"]: dict(row) for row in snapshot["scenes"]}
        for change in after:
            _apply(scenes_seen, change)
        assert {k: (v["heading"], v["body"]) for k, v in scenes_seen.items()} == {
            k: (v["heading"], v["body"]) for k, v in final.items()
        }
        assert final[scenes[0]]["heading"] == "sent while not reading"


async def test_a_resume_that_misses_more_than_the_socket_and_queue_hold_gets_a_snapshot(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """A replay of missed changes that overflows the send queue stops there and is completed by a snapshot."""
    daemon = start_daemon(SLOW_ENV)
    project_id = daemon.project_id
    away = await raw_editor(daemon.url)
    before = await away.join(project_id)
    await away.ws.close()
    async with EditorClient(
        daemon.url, project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED
    ) as author:
        scenes = [row["id"] for row in author.view.ordered("scenes")]
        mids = []
        for i in range(REPLAY_EDITS):
            body = f"{i:06d} " + "x" * EDIT_BYTES
            mids.append(author.send_patch("scenes", scenes[i % len(scenes)], {"body": body}))
            if len(mids) > 4:
                await author.wait_ack(mids[-5])
        last = (await author.wait_ack(mids[-1])).seq

        # The editor comes back but reads only its welcome: the replay fills the socket, then the queue.
        back = await raw_editor(daemon.url, client_id=away.client_id, max_queue=1)
        await back.hello(project_id, resume=(before["epoch"], before["seq"]))
        await back.send({"type": "ping", "t": 1})
        welcome = await back.expect("welcome")
        await wait_for(
            lambda: _overflows(daemon.stderr, welcome["session"]) > 0, "the replay to overflow", WAIT
        )
        frames = await back.frames_until("pong")
        await back.ws.close()

    assert welcome["seq"] == last
    kinds = [frame["type"] for frame in frames]
    replayed = kinds.index("snapshot")
    assert kinds[replayed:] == ["snapshot", "pong"]
    assert [frame["seq"] for frame in frames[:replayed]] == list(
        range(before["seq"] + 1, before["seq"] + 1 + replayed)
    )
    assert replayed < last
    snapshot = frames[replayed]
    assert snapshot["seq"] == last
    assert {row["id"]: row["body"] for row in snapshot["scenes"]} == {
        row_id: row["body"] for row_id, row in author.view.scenes.items()
    }


async def test_an_editor_that_reads_none_of_its_answers_is_cut_off(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """An editor that keeps sending pings but never reads the pongs is disconnected; the others carry on."""
    daemon = start_daemon(SLOW_ENV)
    deaf = await raw_editor(daemon.url, max_queue=1)
    await deaf.join(daemon.project_id)
    ping = {"type": "ping", "t": "x" * EDIT_BYTES}

    async def ping_without_reading() -> None:
        for _ in range(MAX_EDITS):
            await deaf.send(ping)
        # Still open after far more than the socket buffers and twice the queue bound: not cut off.
        await deaf.recv(timeout=WAIT)

    with pytest.raises(ConnectionClosed):
        await ping_without_reading()
    await wait_for(lambda: "reads none of its answers" in daemon.stderr, "the cut-off in the log", WAIT)

    async with EditorClient(
        daemon.url, daemon.project_id, mutation_rate=UNLIMITED, mutation_burst=UNLIMITED
    ) as other:
        scene = other.view.ordered("scenes")[0]["id"]
        ack = await other.patch("scenes", scene, {"heading": "still here"})
        assert ack.seq == 1
