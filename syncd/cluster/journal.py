"""The replicated journal of cluster mode: acknowledged mutations in a JetStream stream.

It has the interface of `syncd.adapters.outbox.Outbox` (``append_nowait`` → a future resolved once
the entry is durable, ``remove``, ``load``, ``depth``, ``async with``), on a stream of ``replicas``
nodes (3 by default) with one subject per project, ``<prefix>.journal.<project_id>``. JetStream
answers a publish once a quorum of the stream's nodes have stored it, so with R3 an acknowledged
entry survives the loss of any one node, and of the instance that wrote it.

Appends are sent in order, many at once (up to ``max_in_flight`` unanswered), and a publish that gets
no answer (a node lost, a stream leader being elected) is sent again until ``append_timeout`` runs
out. Each publish carries a ``Nats-Msg-Id``, so JetStream stores a re-sent entry once. A re-sent
entry can land after a later one of the same writer; each entry therefore also carries its writer and
its place in that writer's order, and `ReplicatedJournal.load` puts a writer's entries back in that
order (entries of different writers keep their stream order: only one instance owns a project at a
time).

Saved entries go with a purge of the project's subject below the oldest entry still waiting (one
request however many entries), or, for entries saved out of order, a delete of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import nats.errors
import nats.js.errors
from nats.js.api import PubAck, RawStreamMsg, StorageType, StreamConfig

from syncd.cluster.connection import patiently
from syncd.core.ids import ClientId, MutationId, ProjectId
from syncd.core.journal import JournalEntry, decode_mutation, encode_mutation
from syncd.errors import JournalError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

WRITER_HEADER = "Syncd-Writer"
ORDER_HEADER = "Syncd-Order"
DUPLICATE_WINDOW = 120.0
"""Seconds JetStream remembers a ``Nats-Msg-Id``: a re-sent entry within it is stored once."""
RETRY_PAUSE = 0.1
"""Seconds between rounds of re-sending unanswered publishes (the client reconnects meanwhile)."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(slots=True)
class _Pending:
    entry: JournalEntry
    subject: str
    payload: bytes
    headers: dict[str, str]
    give_up_at: float
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Project:
    """What this journal knows of one project's subject."""

    waiting: dict[int, MutationId] = field(default_factory=dict)
    """Stream sequence → mutation id of each stored entry not removed yet."""
    in_flight: int = 0
    highest: int = 0


class ReplicatedJournal:
    """The journal of acknowledged edits, replicated by JetStream.

    Use as ``async with ReplicatedJournal(js, ...) as journal``; the stream is created when missing.

    Args:
        js: a JetStream context of a connected client.
        stream: the stream's name.
        subject_prefix: subjects are ``<subject_prefix>.journal.<project_id>``.
        writer_id: this instance (a random part is added, so a restart is another writer).
        replicas: the stream's replicas when this journal creates it.
        max_in_flight: publishes sent and not answered yet, at most.
        append_timeout: seconds an append may take, re-sends included, before it fails.
        ack_timeout: seconds to wait for one publish's answer before sending it again.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subject_prefix: str,
        writer_id: str,
        replicas: int = 3,
        max_in_flight: int = 512,
        append_timeout: float = 10.0,
        ack_timeout: float = 2.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.prefix = f"{subject_prefix}.journal"
        self.writer = f"{writer_id}-{secrets.token_hex(4)}"
        self.replicas = replicas
        self.max_in_flight = max_in_flight
        self.append_timeout = append_timeout
        self.ack_timeout = ack_timeout
        self.publishes = 0
        """Publish requests sent, re-sends included."""
        self._order = 0
        self._queue: list[_Pending] = []
        self._projects: dict[ProjectId, _Project] = {}
        self._seqs: dict[MutationId, list[tuple[ProjectId, int]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def subject(self, project_id: str) -> str:
        """The subject of a project's entries."""
        return f"{self.prefix}.{project_id}"

    async def __aenter__(self) -> Self:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            num_replicas=self.replicas,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )

        async def create() -> None:
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.stream_info(self.stream)  # made by another instance: use it as it is

        try:
            await patiently(create, self.append_timeout)
        except nats.errors.Error as exc:
            raise JournalError(f"cannot open the journal stream {self.stream}: {exc!r}") from exc
        self._closing = False
        self._task = asyncio.create_task(self._send_loop(), name="syncd.journal.send")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Send whatever is queued before closing: those appends are waiting for their ack.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- the Outbox interface -----------------------------------------------------------------------

    def append_nowait(self, entry: JournalEntry) -> asyncio.Future[None]:
        """Queue an entry; the returned future completes once a quorum of the stream's nodes stored it.

        Raises:
            JournalError: the journal is not open.
        """
        if self._task is None or self._closing:
            raise JournalError(f"journal {self.stream} is not open")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        payload = {
            "project_id": entry.project_id,
            "client_id": entry.client_id,
            "mid": entry.mid,
            "mutation": encode_mutation(entry.mutation),
        }
        headers = {
            "Nats-Msg-Id": f"{self.writer}-{self._order}",
            WRITER_HEADER: self.writer,
            ORDER_HEADER: str(self._order),
        }
        give_up_at = time.monotonic() + self.append_timeout
        subject = self.subject(entry.project_id)
        self._queue.append(
            _Pending(entry, subject, _ENCODER.encode(payload).encode(), headers, give_up_at, future)
        )
        self._project(entry.project_id).in_flight += 1
        self._wake.set()
        return future

    async def append(self, entry: JournalEntry) -> None:
        """Write an entry; returns once it is durable.

        Raises:
            JournalError: the journal is not open, or the entry could not be stored in time.
        """
        await self.append_nowait(entry)

    async def remove(self, mutation_ids: Sequence[MutationId]) -> None:
        """Drop the entries of these mutations (saved in the database) from the stream.

        Raises:
            JournalError: NATS refused or could not be reached; the entries stay and are replayed later.
        """
        removed: dict[ProjectId, list[int]] = {}
        for mutation_id in mutation_ids:
            for project_id, seq in self._seqs.pop(mutation_id, ()):
                self._projects[project_id].waiting.pop(seq, None)
                removed.setdefault(project_id, []).append(seq)
        try:
            for project_id, seqs in removed.items():
                await self._drop(project_id, seqs)
        except nats.errors.Error as exc:
            raise JournalError(f"cannot remove saved entries from {self.stream}: {exc!r}") from exc

    async def load(self, project_id: ProjectId | None = None) -> list[JournalEntry]:
        """Return a project's entries (every project's with None), oldest first, and track them for `remove`.

        Raises:
            JournalError: an entry cannot be decoded (the message names it), or NATS failed.
        """
        subject = self.subject(project_id) if project_id is not None else f"{self.prefix}.>"
        try:
            messages = await patiently(lambda: self._read(subject), self.append_timeout)
        except nats.errors.Error as exc:
            raise JournalError(f"cannot read {subject} from {self.stream}: {exc!r}") from exc
        entries = []
        for seq, entry in _in_writer_order([self._decode(m) for m in messages]):
            self._track(entry, seq)
            entries.append(entry)
        return entries

    def depth(self) -> int:
        """How many stored entries this journal has appended or loaded and not removed."""
        return sum(len(p.waiting) for p in self._projects.values())

    # -- sending ------------------------------------------------------------------------------------

    def _project(self, project_id: ProjectId) -> _Project:
        return self._projects.setdefault(project_id, _Project())

    def _track(self, entry: JournalEntry, seq: int) -> None:
        project = self._project(entry.project_id)
        if seq in project.waiting:
            return  # the same entry loaded again
        project.waiting[seq] = entry.mutation_id
        project.highest = max(project.highest, seq)
        self._seqs.setdefault(entry.mutation_id, []).append((entry.project_id, seq))

    async def _send_loop(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[: self.max_in_flight]
            del self._queue[: self.max_in_flight]
            await self._send(batch)

    async def _send(self, batch: list[_Pending]) -> None:
        """Send ``batch`` in order, all at once; send the unanswered ones again until they run out of time."""
        while batch:
            answers = [await self._publish(item) for item in batch]
            results = await asyncio.gather(*answers, return_exceptions=True)
            again: list[_Pending] = []
            now = time.monotonic()
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, PubAck):
                    self._stored(item, result.seq)
                elif _worth_retrying(result) and now < item.give_up_at:
                    again.append(item)
                else:
                    self._failed(item, result)
            if again:
                log.warning("journal: %d appends unanswered, sending them again", len(again))
                await asyncio.sleep(RETRY_PAUSE)
            batch = again

    async def _publish(self, item: _Pending) -> asyncio.Future[PubAck]:
        """Send one publish; its answer, or the error, arrives in the returned future (with a timeout)."""
        self.publishes += 1
        try:
            answer = await self.js.publish_async(item.subject, item.payload, headers=dict(item.headers))
        except (nats.errors.Error, OSError) as exc:
            failed: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
        return asyncio.ensure_future(asyncio.wait_for(answer, self.ack_timeout))

    def _stored(self, item: _Pending, seq: int) -> None:
        self._project(item.entry.project_id).in_flight -= 1
        self._track(item.entry, seq)
        if not item.done.done():
            item.done.set_result(None)

    def _failed(self, item: _Pending, error: BaseException | None) -> None:
        self._project(item.entry.project_id).in_flight -= 1
        if not item.done.done():
            item.done.set_exception(
                JournalError(f"journal {self.stream}: entry {item.entry.mutation_id} not stored: {error!r}")
            )

    # -- removing -----------------------------------------------------------------------------------

    async def _drop(self, project_id: ProjectId, seqs: list[int]) -> None:
        """Remove stored entries of one project: a purge below the oldest one still waiting, deletes above.

        No purge while an append of the project is unanswered: it may have been stored below that line.
        """
        project = self._projects[project_id]
        singles = seqs
        if project.in_flight == 0:
            floor = min(project.waiting, default=project.highest + 1)
            if any(seq < floor for seq in seqs):
                await self.js.purge_stream(self.stream, subject=self.subject(project_id), seq=floor)
                singles = [seq for seq in seqs if seq > floor]
        await asyncio.gather(*(self._delete(seq) for seq in singles))

    async def _delete(self, seq: int) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):  # gone already
            await self.js.delete_msg(self.stream, seq)

    # -- loading ------------------------------------------------------------------------------------

    async def _read(self, subject: str) -> list[RawStreamMsg]:
        """Every message of ``subject`` now in the stream, in stream order.

        One "next message on this subject" request after another: the stream's leader answers them,
        so a load works while the meta leader (needed to make a consumer) is being elected.
        """
        messages: list[RawStreamMsg] = []
        seq = 1
        while True:
            try:
                message = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return messages
            assert message.seq is not None
            messages.append(message)
            seq = message.seq + 1

    def _decode(self, message: RawStreamMsg) -> tuple[int, str, int, JournalEntry]:
        assert message.seq is not None
        seq = message.seq
        headers = message.headers or {}
        try:
            data: Any = json.loads(message.data or b"")
            project_id, client_id, mid = data["project_id"], data["client_id"], data["mid"]
            if not isinstance(project_id, str) or not isinstance(client_id, str):
                raise ValueError("project_id and client_id must be text")
            if not isinstance(mid, int) or isinstance(mid, bool):
                raise ValueError("mid must be an integer")
            entry = JournalEntry(
                ProjectId(project_id), ClientId(client_id), mid, decode_mutation(data["mutation"])
            )
            order = int(headers.get(ORDER_HEADER, seq))
        except (ValueError, TypeError, KeyError) as exc:
            raise JournalError(f"journal {self.stream}: entry {seq} cannot be decoded: {exc}") from exc
        return seq, headers.get(WRITER_HEADER, ""), order, entry


def _worth_retrying(error: object) -> bool:
    """Whether an unanswered or failed publish may succeed if sent again."""
    if isinstance(error, nats.js.errors.APIError):
        return error.code is None or error.code >= 500  # 503: the stream has no leader right now
    # Connection trouble of every kind: the client reconnects to another node meanwhile.
    return isinstance(error, nats.errors.Error | TimeoutError | asyncio.TimeoutError | OSError)


def _in_writer_order(decoded: list[tuple[int, str, int, JournalEntry]]) -> list[tuple[int, JournalEntry]]:
    """Return ``(seq, entry)`` in stream order, except that each writer's entries follow its own order.

    The slots of a writer's entries in the stream stay theirs, and are refilled in that writer's order:
    an entry re-sent after a lost answer moves back before the later entries that overtook it.
    """
    slots: dict[str, list[int]] = {}
    for index, (_, writer, _, _) in enumerate(decoded):
        slots.setdefault(writer, []).append(index)
    placed: list[tuple[int, JournalEntry] | None] = [None] * len(decoded)
    for indexes in slots.values():
        by_order = sorted(indexes, key=lambda i: decoded[i][2])
        for slot, index in zip(indexes, by_order, strict=True):
            seq, _, _, entry = decoded[index]
            placed[slot] = (seq, entry)
    return [item for item in placed if item is not None]
