"""Outbox: the durable journal of acknowledged edits, in SQLite (WAL, ``synchronous=FULL``).

An editor's ``ack`` means its mutation is in this file and fsync'd. Appends that arrive while a
commit is running are written together by the next commit, in one transaction with one fsync
(group commit), so the cost of an fsync is shared by every edit that arrived during the previous
one. Entries are removed once the database holds their mutations; on start, `Outbox.load` returns
what is left, in insertion order, for `syncd.core.engine.SyncEngine.restore`.

SQLite connections belong to their thread, so all SQLite work runs on one dedicated thread. The
event loop hands it a group of appends through a queue, and the thread hands the group back finished
with one callback (``call_soon_threadsafe``): one thread round trip per group commit, with no executor
future and no task between them.

Under load a commit may wait to take more appends with it (``commit_window``): when the last commit
started less than a window ago and another author has appended since (`commit_at`), the next commit
starts one window after the last one began. The fsyncs per second are then at most one per window,
and each ack is at most a window later; a lone writer that waits for each ack is never held.

Saved entries may leave a little later than their save (``removal_delay``): the removals that come
within that delay go in one commit, sorted by ``seq``. The journal's rows of all projects interleave, so
a project's removal on its own rewrites about one page per row; the removals of the saves that come
together (every open project's, when their 5 s limits fall in the same second) then rewrite each page
once. An entry kept after its save is harmless: after a crash it is replayed, and the store skips a
mutation id it has already recorded, as for a crash between a save and its removal.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

from syncd import jsonlib
from syncd.adapters import fileformat
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
FORMAT = 1
"""The journal's format number (`syncd.adapters.fileformat`)."""

# No index on (project_id, client_id, mid): it would cost every commit a random B-tree insert per
# entry. The outbox keeps the (project, mutation id) -> seq map in memory instead, and deletes by
# primary key.

# One encoder for all appends: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(value: object) -> str:
    """A mutation as JSON text: :func:`syncd.jsonlib.dumps`, or what the journal always wrote for a value
    it refuses (a NaN, which validated edits never hold)."""
    try:
        return jsonlib.dumps(value).decode()
    except ValueError:
        return _ENCODER.encode(value)


INSERT = "insert into journal (seq, project_id, client_id, mid, mutation, created) values (?, ?, ?, ?, ?, ?)"

ONE_STATEMENT = 128
"""The most appends committed as one multi-row ``insert`` (6 parameters each, well under SQLite's limit)."""


@functools.lru_cache(maxsize=ONE_STATEMENT)
def _insert_rows(count: int) -> str:
    """One ``insert`` of ``count`` rows."""
    return INSERT + ", (?, ?, ?, ?, ?, ?)" * (count - 1)


DELETE = "delete from journal where seq = ?"


def _prepare(db: sqlite3.Connection) -> list[tuple[int, str, str, int]]:
    """Set the journal file up and return the keys of its entries, oldest first."""
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = full")
    db.executescript(SCHEMA)
    return db.execute("select seq, project_id, client_id, mid from journal order by seq").fetchall()


@dataclass(slots=True)
class _Append:
    row: tuple[int, str, str, int, str, float]
    done: asyncio.Future[None]

    @property
    def author(self) -> tuple[str, str]:
        """The project and client id: one editor, or one caller of the HTTP API."""
        return self.row[1], self.row[2]


@dataclass(slots=True)
class _Remove:
    seqs: list[tuple[int]]
    done: asyncio.Future[None]


_Op = _Append | _Remove

_Done = Callable[[object, BaseException | None], None]
"""Called on the event loop with what a job on the SQLite thread returned, or what it raised."""

_Job = tuple[Callable[..., object], tuple[object, ...], _Done]


def commit_at(now: float, last_start: float, window: float, *, other_authors: bool) -> float:
    """When a commit of what is queued may start, given that the last one started at ``last_start``.

    At once, unless the last commit began less than ``window`` ago and the queue holds appends of more
    than one author (counting the author of the last append committed). Then, at ``last_start +
    window``: several editors are writing, and what they append meanwhile shares the fsync. A single
    author is not held back, since it may be waiting for its ack before it sends its next edit.
    """
    if other_authors and now < last_start + window:
        return last_start + window
    return now


_Key = tuple[ProjectId, ClientId, int]
"""What names a journal entry's mutation: client ids are public, so the project is part of it."""


class Outbox:
    """The journal of acknowledged edits.

    Use as ``async with Outbox(path) as outbox``; the file and its folder are created when missing.

    Args:
        path: the SQLite file.
        group_commit: commit every append that is waiting in one transaction (the default). False
            commits each append on its own, with its own fsync (for comparison in benchmarks).
        commit_window: seconds a commit may wait after the start of the last one while several
            authors are appending (`commit_at`); 0 starts every commit as soon as the last one ends.
        removal_delay: seconds a removal may wait for others to share its commit; 0 queues each at once.

    Attributes:
        commits: how many transactions were committed since opening.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        group_commit: bool = True,
        commit_window: float = 0.0,
        removal_delay: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.group_commit = group_commit
        self.commit_window = commit_window
        self.removal_delay = removal_delay
        self.commits = 0
        self._depth = 0
        self._next_seq = 1
        self._seqs: dict[_Key, list[int]] = {}
        self._db: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._queue: list[_Op] = []
        self._removal: _Remove | None = None  # removals waiting for ``removal_delay``
        self._removal_due: asyncio.TimerHandle | None = None
        self._committing: list[_Op] | None = None
        self._scheduled: asyncio.Handle | None = None
        self._held = False
        self._last_start = float("-inf")
        self._last_author: tuple[str, str] | None = None
        self._idle: asyncio.Event | None = None
        self._open_now = False
        self._closing = False

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._serve, name="syncd-outbox", daemon=True)
        self._thread.start()
        try:
            await self._run(self._open)
        except BaseException:
            self._stop_thread()
            raise
        self._closing = False
        self._open_now = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Commit whatever is queued before closing: those appends are waiting for their ack.
        self._queue_removal()
        self._closing = True
        if self._scheduled is not None and self._held:
            # Held by the commit window: nobody appends any more, so it starts now.
            self._scheduled.cancel()
            self._schedule_commit()
        assert self._idle is not None
        await self._idle.wait()
        self._open_now = False
        try:
            await self._run(self._close)
        finally:
            self._stop_thread()

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
            _encode(encode_mutation(entry.mutation)),
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
        in several projects, and each project's mids are its own. Returns once the removal is
        committed: with the removals of every call within ``removal_delay`` of the first, in one commit.

        Raises:
            JournalError: the outbox is not open, or the write failed.
        """
        if not mutation_ids:
            return
        self._check_open()
        loop = asyncio.get_running_loop()
        removal = self._removal
        if removal is None:
            removal = self._removal = _Remove([], loop.create_future())
            if self.removal_delay > 0:
                self._removal_due = loop.call_later(self.removal_delay, self._queue_removal)
        for client_id, mid in mutation_ids:
            removal.seqs.extend((seq,) for seq in self._seqs.pop((project_id, client_id, mid), ()))
        if self.removal_delay <= 0:
            self._queue_removal()
        await asyncio.shield(removal.done)

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
        if not self._open_now or self._closing:
            raise JournalError(f"outbox {self.path} is not open")

    def _enqueue(self, op: _Op) -> None:
        self._check_open()
        self._queue.append(op)
        if self._committing is None and self._scheduled is None:
            assert self._idle is not None
            self._idle.clear()
            self._schedule_commit()

    def _queue_removal(self) -> None:
        """Queue the removals gathered so far as one operation, in the journal's order."""
        removal, self._removal = self._removal, None
        if self._removal_due is not None:
            self._removal_due.cancel()
            self._removal_due = None
        if removal is not None:
            removal.seqs.sort()
            self._enqueue(removal)

    def _schedule_commit(self, *, now_ok: bool = False) -> None:
        """Start the next commit on the next turn of the loop, so that every append of this turn goes
        with it (``now_ok``: at once), or later if `commit_at` says so."""
        assert self._loop is not None
        now = self._loop.time()
        at = now
        if self.commit_window > 0 and not self._closing:
            at = commit_at(now, self._last_start, self.commit_window, other_authors=self._other_authors())
        self._held = at > now
        if self._held:
            self._scheduled = self._loop.call_at(at, self._start_commit)
        elif now_ok:
            self._start_commit()
        else:
            self._scheduled = self._loop.call_soon(self._start_commit)

    def _other_authors(self) -> bool:
        """Whether the queue holds appends of another author than the first one (or the last committed)."""
        author = self._last_author
        for op in self._queue:
            if isinstance(op, _Append):
                if author is None:
                    author = op.author
                elif op.author != author:
                    return True
        return False

    def _start_commit(self) -> None:
        """Hand what is queued to the SQLite thread as one commit (one append without group commit)."""
        self._scheduled = None
        if self.group_commit:
            ops, self._queue = self._queue, []
        else:
            ops = [self._queue.pop(0)]
        assert self._loop is not None
        self._last_start = self._loop.time()
        for op in reversed(ops):
            if isinstance(op, _Append):
                self._last_author = op.author
                break
        self._committing = ops
        self._jobs.put((self._write_ops, (ops,), self._committed))

    def _committed(self, removed: object, error: BaseException | None) -> None:
        """On the loop: complete the appends and removes of the commit that just ended, start the next."""
        ops, self._committing = self._committing, None
        assert ops is not None
        if error is None:
            assert isinstance(removed, int)
            self.commits += 1
            self._depth += sum(isinstance(op, _Append) for op in ops) - removed
            for op in ops:
                if not op.done.done():
                    op.done.set_result(None)
        else:
            # The thread serves every appender: a failed commit fails its own appends (whose
            # callers must not ack them) and the next commit goes on with the next ones.
            log.error("outbox commit of %d operations failed", len(ops), exc_info=error)
            if not isinstance(error, JournalError):
                error = JournalError(f"cannot write the outbox {self.path}: {error!r}")
            for op in ops:
                if not op.done.done():
                    op.done.set_exception(error)
        if self._queue:
            self._schedule_commit(now_ok=True)
        else:
            assert self._idle is not None
            self._idle.set()

    # -- on the SQLite thread -----------------------------------------------------------------------

    def _serve(self) -> None:
        """The SQLite thread: run jobs in order, report each back to the loop, until told to stop."""
        loop = self._loop
        assert loop is not None
        while (job := self._jobs.get()) is not None:
            fn, args, done = job
            try:
                result, error = fn(*args), None
            except Exception as exc:
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits for the answer any more

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the SQLite thread, after every job handed to it before."""
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()

        def done(result: object, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        self._jobs.put((fn, args, done))
        return await future

    def _write_ops(self, ops: list[_Op]) -> int:
        # Looked up at each commit, not bound once: tests replace ``_write`` to make a commit fail.
        return self._write(ops)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db, keys = fileformat.connect(self.path, FORMAT, _prepare)
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
        if len(ops) <= ONE_STATEMENT and all(type(op) is _Append for op in ops):
            # A group of appends is one statement, which autocommit makes one transaction: one step in
            # SQLite, one fsync, and one hand-back of the GIL instead of one per statement and per row
            # (each of which the event loop's thread may have to wait for).
            params = [value for op in ops if isinstance(op, _Append) for value in op.row]
            try:
                db.execute(_insert_rows(len(ops)), params)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot write the outbox {self.path}: {exc}") from exc
            return 0
        removed = 0
        try:
            with fileformat.transaction(db):
                # Runs of appends go in one executemany: the loop stays in C and leaves the GIL
                # to the event loop. Order between appends and removes is kept.
                for is_append, run in itertools.groupby(ops, key=lambda op: isinstance(op, _Append)):
                    if is_append:
                        db.executemany(INSERT, [op.row for op in run if isinstance(op, _Append)])
                    else:
                        seqs = [seq for op in run if isinstance(op, _Remove) for seq in op.seqs]
                        removed += db.executemany(DELETE, seqs).rowcount
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
