"""Outbox: the durable journal of acknowledged edits, in SQLite (WAL, ``synchronous=FULL``).

An editor's ``ack`` means its mutation is in this file and fsync'd. Appends that arrive while a
commit is running are written together by the next commit, in one transaction with one fsync
(group commit), so the cost of an fsync is shared by every edit that arrived during the previous
one. Entries are removed once the database holds their mutations; on start, `Outbox.load` returns
what is left, in insertion order, for `syncd.core.engine.SyncEngine.restore`.

SQLite connections belong to their thread, so all SQLite work runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

from syncd.core.ids import ClientId, MutationId, ProjectId
from syncd.core.journal import JournalEntry, decode_mutation, encode_mutation
from syncd.errors import JournalError

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
create table if not exists journal (
    seq        integer primary key,
    project_id text    not null,
    client_id  text    not null,
    mid        integer not null,
    mutation   text    not null,
    created    real    not null
);
"""
# No index on (project_id, client_id, mid): it would cost every commit a random B-tree insert per
# entry. The outbox keeps the (project, mutation id) -> seq map in memory instead, and deletes by
# primary key.

# One encoder for all appends: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

INSERT = "insert into journal (seq, project_id, client_id, mid, mutation, created) values (?, ?, ?, ?, ?, ?)"
DELETE = "delete from journal where seq = ?"


@dataclass(slots=True)
class _Append:
    row: tuple[int, str, str, int, str, float]
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Remove:
    seqs: list[tuple[int]]
    done: asyncio.Future[None]


_Op = _Append | _Remove

_Key = tuple[ProjectId, ClientId, int]
"""What names a journal entry's mutation: client ids are public, so the project is part of it."""


class Outbox:
    """The journal of acknowledged edits.

    Use as ``async with Outbox(path) as outbox``; the file and its folder are created when missing.

    Args:
        path: the SQLite file.
        group_commit: commit every append that is waiting in one transaction (the default). False
            commits each append on its own, with its own fsync (for comparison in benchmarks).

    Attributes:
        commits: how many transactions were committed since opening.
    """

    def __init__(self, path: Path | str, *, group_commit: bool = True) -> None:
        self.path = Path(path)
        self.group_commit = group_commit
        self.commits = 0
        self._depth = 0
        self._next_seq = 1
        self._seqs: dict[_Key, list[int]] = {}
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._queue: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-outbox")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        self._closing = False
        self._task = asyncio.create_task(self._commit_loop(), name="syncd.outbox.commit")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Commit whatever is queued before closing: those appends are waiting for their ack.
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        assert task is not None
        await task
        await self._run(self._close)
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None

    # -- public API ---------------------------------------------------------------------------------

    def append_nowait(self, entry: JournalEntry) -> asyncio.Future[None]:
        """Queue an entry; the returned future completes once it is durable.

        Queued entries are committed in the order of these calls, so awaiting the future of the last
        append also covers every earlier one.

        Raises:
            JournalError: the outbox is not open.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seq = self._next_seq
        row = (
            seq,
            entry.project_id,
            entry.client_id,
            entry.mid,
            _ENCODER.encode(encode_mutation(entry.mutation)),
            time.time(),
        )
        self._enqueue(_Append(row, future))
        self._next_seq += 1
        self._seqs.setdefault((entry.project_id, entry.client_id, entry.mid), []).append(seq)
        return future

    async def append(self, entry: JournalEntry) -> None:
        """Write an entry; returns once it is on disk.

        Raises:
            JournalError: the outbox is not open, or the write failed.
        """
        await self.append_nowait(entry)

    async def remove(self, project_id: ProjectId, mutation_ids: Sequence[MutationId]) -> None:
        """Delete the entries of these mutations of one project (committed after every append queued before).

        The entries of another project with the same ``(client_id, mid)`` stay: a client id may be used
        in several projects, and each project's mids are its own.

        Raises:
            JournalError: the outbox is not open, or the write failed.
        """
        if not mutation_ids:
            return
        self._check_open()
        keys = [(project_id, client_id, mid) for client_id, mid in mutation_ids]
        seqs = [(seq,) for key in keys for seq in self._seqs.pop(key, ())]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Remove(seqs, future))
        await future

    async def load(self) -> list[JournalEntry]:
        """Return every entry, oldest first.

        Raises:
            JournalError: a row cannot be decoded (the message names it), or the read failed.
        """
        return await self._run(self._load)

    def depth(self) -> int:
        """How many entries the journal holds (committed ones)."""
        return self._depth

    # -- the commit loop ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._task is None or self._closing:
            raise JournalError(f"outbox {self.path} is not open")

    def _enqueue(self, op: _Op) -> None:
        self._check_open()
        self._queue.append(op)
        self._wake.set()

    async def _commit_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.group_commit:
                ops, self._queue = self._queue, []
            else:
                ops = [self._queue.pop(0)]
            try:
                removed = await self._run(self._write, ops)
            except Exception as exc:
                # This loop serves every appender: a failed commit fails its own appends (whose
                # callers must not ack them) and the loop goes on with the next ones.
                log.exception("outbox commit of %d operations failed", len(ops))
                if not isinstance(exc, JournalError):
                    exc = JournalError(f"cannot write the outbox {self.path}: {exc!r}")
                for op in ops:
                    if not op.done.done():
                        op.done.set_exception(exc)
                continue
            self.commits += 1
            self._depth += sum(isinstance(op, _Append) for op in ops) - removed
            for op in ops:
                if not op.done.done():
                    op.done.set_result(None)

    # -- on the SQLite thread -----------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("pragma journal_mode = wal")
            db.execute("pragma synchronous = full")
            db.executescript(SCHEMA)
            keys = db.execute("select seq, project_id, client_id, mid from journal order by seq").fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._db = db
        self._depth = len(keys)
        self._next_seq = keys[-1][0] + 1 if keys else 1
        self._seqs = {}
        for seq, project_id, client_id, mid in keys:
            self._seqs.setdefault((ProjectId(str(project_id)), ClientId(str(client_id)), mid), []).append(seq)

    def _close(self) -> None:
        assert self._db is not None
        self._db.close()
        self._db = None

    def _write(self, ops: list[_Op]) -> int:
        """Apply appends and removes in one transaction; returns how many rows were removed."""
        db = self._db
        assert db is not None
        removed = 0
        try:
            db.execute("begin immediate")
            try:
                # Runs of appends go in one executemany: the loop stays in C and leaves the GIL
                # to the event loop. Order between appends and removes is kept.
                for is_append, run in itertools.groupby(ops, key=lambda op: isinstance(op, _Append)):
                    if is_append:
                        db.executemany(INSERT, [op.row for op in run if isinstance(op, _Append)])
                    else:
                        seqs = [seq for op in run if isinstance(op, _Remove) for seq in op.seqs]
                        removed += db.executemany(DELETE, seqs).rowcount
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the outbox {self.path}: {exc}") from exc
        return removed

    def _load(self) -> list[JournalEntry]:
        db = self._db
        assert db is not None
        try:
            rows = db.execute(
                "select seq, project_id, client_id, mid, mutation from journal order by seq"
            ).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the outbox {self.path}: {exc}") from exc
        entries: list[JournalEntry] = []
        for seq, project_id, client_id, mid, mutation in rows:
            try:
                if not isinstance(project_id, str) or not isinstance(client_id, str):
                    raise ValueError("project_id and client_id must be text")
                if not isinstance(mid, int):
                    raise ValueError("mid must be an integer")
                decoded = decode_mutation(json.loads(mutation))
                entries.append(JournalEntry(ProjectId(project_id), ClientId(client_id), mid, decoded))
            except (ValueError, TypeError) as exc:
                raise JournalError(f"outbox {self.path}: journal row {seq} cannot be decoded: {exc}") from exc
        return entries
