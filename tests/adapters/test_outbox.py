"""Outbox: durable appends, group commit, removal, replay order, damaged journals (real SQLite files)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from syncd.adapters.outbox import FORMAT, Outbox, commit_at
from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch
from syncd.core.journal import JournalEntry, Reordered
from syncd.errors import JournalError, StartupError
from tests.support.store import held_open

P = ProjectId("p-1")
A = ClientId("client-a")
B = ClientId("client-b")


def patch(mid: int, client: ClientId = A) -> JournalEntry:
    return JournalEntry(P, client, mid, Patch(mid, "scenes", RowId("s-1"), {"heading": f"h{mid}"}))


async def test_appends_survive_a_reopen(tmp_path: Path) -> None:
    """Entries appended before close are read back by a new outbox on the same file, in order."""
    path = tmp_path / "state" / "outbox.sqlite3"
    entries = [
        patch(1),
        JournalEntry(P, A, 2, Insert(2, "clips", {"id": "c-9", "project_id": P, "metadata": {"k": [1]}})),
        JournalEntry(P, B, 1, Delete(1, "clips", RowId("c-1"))),
        JournalEntry(P, B, 2, Reordered(2, "scenes", ((RowId("s-2"), 0), (RowId("s-1"), 1)))),
    ]
    async with asyncio.timeout(10), Outbox(path) as outbox:
        for entry in entries:
            await outbox.append(entry)
        assert outbox.depth() == 4
    async with asyncio.timeout(10), Outbox(path) as again:
        assert again.depth() == 4
        assert await again.load() == entries


async def test_file_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    """The journal is a WAL database, and every commit is synced in full."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        await outbox.append(patch(1))
        assert (path.parent / "outbox.sqlite3-wal").exists()
    with sqlite3.connect(path) as db:
        assert db.execute("pragma journal_mode").fetchone() == ("wal",)


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """Appends that arrive together are committed together: far fewer commits than appends."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3") as outbox:
        await asyncio.gather(*(outbox.append(patch(mid)) for mid in range(1, 101)))
        assert outbox.depth() == 100
        assert 1 <= outbox.commits <= 2
        assert [entry.mid for entry in await outbox.load()] == list(range(1, 101))


async def test_without_group_commit_each_append_commits(tmp_path: Path) -> None:
    """The comparison mode commits (and syncs) every append on its own."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3", group_commit=False) as outbox:
        await asyncio.gather(*(outbox.append(patch(mid)) for mid in range(1, 21)))
        assert outbox.commits == 20
        assert [entry.mid for entry in await outbox.load()] == list(range(1, 21))


async def test_appends_during_a_commit_go_in_the_next(tmp_path: Path) -> None:
    """An append queued while a commit runs is committed by the following one."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3") as outbox:
        first = outbox.append_nowait(patch(1))
        await asyncio.sleep(0)  # the commit of the first append starts
        second = outbox.append_nowait(patch(2))
        third = outbox.append_nowait(patch(3))
        await asyncio.gather(first, second, third)
        assert outbox.commits == 2


async def test_remove(tmp_path: Path) -> None:
    """Removed mutations leave the journal for good; unknown ones are ignored."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        for mid in (1, 2, 3):
            await outbox.append(patch(mid))
        await outbox.append(patch(1, B))
        await outbox.remove(P, [(A, 1), (A, 3), (A, 99)])
        await outbox.remove(P, [])
        assert outbox.depth() == 2
        assert [entry.mutation_id for entry in await outbox.load()] == [(A, 2), (B, 1)]
    async with asyncio.timeout(10), Outbox(path) as again:
        assert [entry.mutation_id for entry in await again.load()] == [(A, 2), (B, 1)]


async def test_remove_trims_only_its_own_project(tmp_path: Path) -> None:
    """The same (client_id, mid) in two projects are two entries: saving one project keeps the other's."""
    path = tmp_path / "outbox.sqlite3"
    q = ProjectId("p-2")
    other = JournalEntry(q, A, 1, Insert(1, "scenes", {"id": "s-q", "project_id": q}))
    async with asyncio.timeout(10), Outbox(path) as outbox:
        await outbox.append(other)
        await outbox.append(patch(1))
        await outbox.remove(P, [(A, 1)])
        assert await outbox.load() == [other]
    # The map from mutations to rows is rebuilt from the file with the project in it.
    async with asyncio.timeout(10), Outbox(path) as again:
        await again.append(patch(1))
        await again.remove(P, [(A, 1)])
        assert await again.load() == [other]
        await again.remove(q, [(A, 1)])
        assert await again.load() == []
        assert again.depth() == 0


async def test_removals_within_the_delay_share_one_commit(tmp_path: Path) -> None:
    """Removals that come within ``removal_delay`` are committed together, each caller told once it is."""
    path = tmp_path / "outbox.sqlite3"
    q = ProjectId("p-2")
    other = JournalEntry(q, A, 1, Insert(1, "scenes", {"id": "s-q", "project_id": q}))
    async with asyncio.timeout(10), Outbox(path, removal_delay=0.2) as outbox:
        for entry in (patch(1), other, patch(2), patch(3)):
            await outbox.append(entry)
        before = outbox.commits
        first = asyncio.create_task(outbox.remove(P, [(A, 2), (A, 1)]))
        second = asyncio.create_task(outbox.remove(q, [(A, 1)]))
        await asyncio.sleep(0)
        assert not first.done()
        assert not second.done()
        await asyncio.gather(first, second)
        assert outbox.commits == before + 1
        assert outbox.depth() == 1
        assert [entry.mutation_id for entry in await outbox.load()] == [(A, 3)]


async def test_a_cancelled_remover_does_not_cancel_the_others(tmp_path: Path) -> None:
    """Callers share the gathered removal: one of them giving up leaves it to the rest."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3", removal_delay=0.2) as outbox:
        for mid in (1, 2):
            await outbox.append(patch(mid))
        leaving = asyncio.create_task(outbox.remove(P, [(A, 1)]))
        staying = asyncio.create_task(outbox.remove(P, [(A, 2)]))
        await asyncio.sleep(0)
        leaving.cancel()
        await staying
        assert leaving.cancelled()
        assert await outbox.load() == []


async def test_close_commits_the_removals_still_held(tmp_path: Path) -> None:
    """Closing does not wait for ``removal_delay``: what is held goes in a commit before the file closes."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10):
        async with Outbox(path, removal_delay=60.0) as outbox:
            for mid in (1, 2, 3):
                await outbox.append(patch(mid))
            held = asyncio.create_task(outbox.remove(P, [(A, 1), (A, 3)]))
            await asyncio.sleep(0)
            assert outbox.depth() == 3
        await held
        async with Outbox(path) as again:
            assert [entry.mutation_id for entry in await again.load()] == [(A, 2)]


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    """Appends queued when the outbox closes are committed before it closes."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10):
        async with Outbox(path) as outbox:
            pending = [outbox.append_nowait(patch(mid)) for mid in (1, 2)]
        assert all(future.done() and future.exception() is None for future in pending)
        async with Outbox(path) as again:
            assert again.depth() == 2


async def test_closed_outbox_refuses_appends(tmp_path: Path) -> None:
    """An outbox that is not open says so instead of losing the entry."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    with pytest.raises(JournalError, match="is not open"):
        await outbox.append(patch(1))
    async with asyncio.timeout(10), outbox:
        pass
    with pytest.raises(JournalError, match="is not open"):
        await outbox.remove(P, [(A, 1)])


@pytest.mark.parametrize(
    ("mutation", "words"),
    [
        ("{not json", "journal row 2 cannot be decoded"),
        ('{"type": "patch", "mid": 1, "table": "scenes"}', "journal row 2 cannot be decoded: field 'id'"),
        ('{"type": "delete", "mid": 7, "table": "clips", "id": "c"}', "differs"),
    ],
)
async def test_damaged_row_is_named(tmp_path: Path, mutation: str, words: str) -> None:
    """A row that cannot be decoded stops the replay with an error naming it; nothing is skipped."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        await outbox.append(patch(1))
    with sqlite3.connect(path) as db:
        db.execute(
            "insert into journal (project_id, client_id, mid, mutation, created) values (?, ?, ?, ?, 0)",
            (P, A, 2, mutation),
        )
    async with asyncio.timeout(10), Outbox(path) as again:
        with pytest.raises(JournalError, match=words):
            await again.load()


async def test_damaged_columns_are_named(tmp_path: Path) -> None:
    """Columns of the wrong type are reported with the row."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(
            "insert into journal (project_id, client_id, mid, mutation, created)"
            " values (x'01', 'a', 'x', '{}', 0)"
        )
    async with asyncio.timeout(10), Outbox(path) as again:
        with pytest.raises(
            JournalError, match="row 1 cannot be decoded: project_id and client_id must be text"
        ):
            await again.load()
    with sqlite3.connect(path) as db:
        db.execute("update journal set project_id = 'p'")
    async with asyncio.timeout(10), Outbox(path) as again:
        with pytest.raises(JournalError, match="row 1 cannot be decoded: mid must be an integer"):
            await again.load()


async def test_failed_commit_fails_its_appends_only(tmp_path: Path) -> None:
    """A commit that fails raises in every append it held; the outbox keeps working for the next ones."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        await outbox.append(patch(1))
        with sqlite3.connect(path) as db:
            db.execute(
                "create trigger refuse before insert on journal when new.mid = 13"
                " begin select raise(abort, 'no'); end"
            )
        results = await asyncio.gather(
            outbox.append(patch(12)), outbox.append(patch(13)), return_exceptions=True
        )
        assert all(isinstance(result, JournalError) for result in results)
        assert "cannot write the outbox" in str(results[0])
        await outbox.append(patch(14))
        assert [entry.mid for entry in await outbox.load()] == [1, 14]
        assert outbox.depth() == 2


async def test_unexpected_commit_error_fails_only_its_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever breaks a commit reaches its appenders as a JournalError, and later commits still run."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3") as outbox:
        real_write = outbox._write

        def broken(ops: list[object]) -> int:
            monkeypatch.setattr(outbox, "_write", real_write)
            raise RuntimeError("bug")

        monkeypatch.setattr(outbox, "_write", broken)
        with pytest.raises(JournalError, match="RuntimeError"):
            await outbox.append(patch(1))
        await outbox.append(patch(2))
        assert [entry.mid for entry in await outbox.load()] == [2]


async def test_cancelled_appender_does_not_block_the_others(tmp_path: Path) -> None:
    """An append whose caller gave up is still committed, and the appends with it still complete."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        gave_up = outbox.append_nowait(patch(1))
        gave_up.cancel()
        await outbox.append(patch(2))
        assert [entry.mid for entry in await outbox.load()] == [1, 2]
        with sqlite3.connect(path) as db:
            db.execute("create trigger refuse before insert on journal begin select raise(abort, 'no'); end")
        gave_up = outbox.append_nowait(patch(3))
        gave_up.cancel()
        with pytest.raises(JournalError):
            await outbox.append(patch(4))


async def test_unreadable_file(tmp_path: Path) -> None:
    """A path that is not a database fails to open with an error naming it."""
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="cannot open the outbox"):
        async with asyncio.timeout(10), Outbox(path):
            pass


async def test_a_journal_from_a_newer_syncd_is_refused_untouched(tmp_path: Path) -> None:
    """A new journal is stamped with this build's format; one stamped higher is refused before anything is
    read or written: its entries are acknowledged edits that this build might replay wrongly."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        await outbox.append(patch(1))
    db = sqlite3.connect(path)
    assert db.execute("pragma user_version").fetchone()[0] == FORMAT
    db.execute(f"pragma user_version = {FORMAT + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(
        StartupError, match=f"outbox.sqlite3 was written by a newer syncd \\(file format {FORMAT + 1}; "
    ):
        async with asyncio.timeout(10), Outbox(path):
            pass
    assert path.read_bytes() == before


async def test_a_journal_that_cannot_be_set_up_is_refused_and_left_closed(tmp_path: Path) -> None:
    """A failure after the format check (here: a journal table without the columns read at start) is an
    error naming the file, and the file is no longer held open."""
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("create table journal (seq integer primary key, payload text)")
    db.close()
    with pytest.raises(JournalError, match=r"cannot open the outbox .*outbox\.sqlite3: no such column"):
        async with asyncio.timeout(10), Outbox(path):
            pass
    assert held_open(path) == 0


async def test_unreadable_table(tmp_path: Path) -> None:
    """A journal whose table was damaged fails to load with an error naming the file."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(10), Outbox(path) as outbox:
        with sqlite3.connect(path) as db:
            db.execute("alter table journal rename column mutation to other")
        with pytest.raises(JournalError, match="cannot read the outbox"):
            await outbox.load()


@pytest.mark.parametrize(
    ("now", "other_authors", "expected"),
    [
        (10.002, True, 10.005),  # several authors, inside the window: waits for its end
        (10.002, False, 10.002),  # one author: never held
        (10.005, True, 10.005),  # the window is over
        (10.009, True, 10.009),
    ],
)
def test_commit_at_holds_a_commit_only_for_several_authors(
    now: float, other_authors: bool, expected: float
) -> None:
    """The last commit started at 10.000 with a 5 ms window."""
    assert commit_at(now, 10.0, 0.005, other_authors=other_authors) == expected


def test_commit_at_without_a_window_is_at_once() -> None:
    assert commit_at(10.001, 10.0, 0.0, other_authors=True) == 10.001


async def test_commit_window_groups_the_edits_of_several_authors(tmp_path: Path) -> None:
    """Inside the window, appends of two authors wait and share one commit instead of one each."""
    async with asyncio.timeout(10), Outbox(tmp_path / "outbox.sqlite3", commit_window=1.0) as outbox:
        await outbox.append(patch(1, A))
        first = outbox.append_nowait(patch(1, B))
        await asyncio.sleep(0.02)
        assert not first.done()  # held: B is not A, the last author
        second = outbox.append_nowait(patch(2, A))
        await asyncio.gather(first, second)
        assert outbox.commits == 2
        assert [(e.client_id, e.mid) for e in await outbox.load()] == [(A, 1), (B, 1), (A, 2)]


async def test_commit_window_never_holds_a_lone_author(tmp_path: Path) -> None:
    """One author that waits for each ack is not slowed down: each of its appends commits at once."""
    async with asyncio.timeout(5), Outbox(tmp_path / "outbox.sqlite3", commit_window=60.0) as outbox:
        for mid in range(1, 6):
            await outbox.append(patch(mid, A))
        assert outbox.commits == 5


async def test_close_commits_what_the_window_holds(tmp_path: Path) -> None:
    """Closing does not wait for the window: the held appends are committed and read back."""
    path = tmp_path / "outbox.sqlite3"
    async with asyncio.timeout(5):
        async with Outbox(path, commit_window=60.0) as outbox:
            await outbox.append(patch(1, A))
            held = outbox.append_nowait(patch(1, B))
            await asyncio.sleep(0.02)
            assert not held.done()
        assert held.done()
        assert held.exception() is None
        async with Outbox(path) as again:
            assert [(e.client_id, e.mid) for e in await again.load()] == [(A, 1), (B, 1)]
