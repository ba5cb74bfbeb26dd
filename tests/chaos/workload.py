"""Editors that keep editing through a fault, and the counts of what became of their edits.

Each :class:`ChaosEditor` owns one scene and the clips it inserts, so the value of every field it writes
is decided by its own edits alone. Every written value names its mutation (``e1.417``), so the database
can say which acknowledged edit it holds and whether any was written twice. An editor sends up to
:data:`WINDOW` mutations ahead of their acks; when its connection drops it reconnects (resuming, and
resending what has no answer yet, as :class:`~syncd.client.EditorClient` does) and goes on.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from syncd.client import ClientClosed, EditorClient, EditorError
from tests.chaos.stores import TRACKED, DbState, Store
from tests.support.waiting import wait_for

WINDOW = 4
"""Mutations an editor sends ahead of their acks."""

ANSWER_WAIT = 10.0
"""Seconds an open connection may leave a mutation unanswered before the editor reconnects."""

RECONNECT_WITHIN = 30.0
"""Seconds an editor keeps trying to reconnect before the run fails."""

RECONNECT_PAUSE = 0.05
"""Seconds between two reconnection attempts."""

SETTLE = 20.0
"""Seconds for the editors' last answers, the saves, and the editors' views to agree with the database."""


@dataclass(frozen=True)
class Edit:
    """One mutation an editor sent.

    Attributes:
        kind: what it does.
        table: the table it changes.
        row_id: the row it changes.
        column: the column a patch sets (None for inserts and deletes).
        value: the value it writes (a patch's new value, an insert's prompt; None for deletes).
    """

    kind: Literal["patch", "insert", "delete"]
    table: str
    row_id: str
    column: str | None
    value: str | None


@dataclass
class ChaosEditor:
    """One editor of a chaos run: its connection, what it sent, and what was acknowledged.

    Args:
        name: a short name, the prefix of every value it writes.
        client: its (not yet connected) client.
        scene_id: the scene it owns.
        rng: its random choices (seeded by the run).
        padding: characters added to every value (to fill a disk faster).
    """

    name: str
    client: EditorClient
    scene_id: str
    rng: random.Random
    padding: int = 0
    edits: dict[int, Edit] = field(default_factory=dict)
    acked: dict[int, int] = field(default_factory=dict)
    """mid -> the seq of its ack."""
    refused: dict[int, str] = field(default_factory=dict)
    """mid -> the error code it was answered with."""
    reconnects: int = 0
    stalls: int = 0
    _live_clips: list[str] = field(default_factory=list)

    # ---- editing ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, rate: float) -> None:
        """Edit at about ``rate`` mutations per second until ``stop`` is set, then wait for every answer."""
        inflight: deque[int] = deque()
        while not stop.is_set():
            if len(inflight) >= WINDOW:
                await self._answer(inflight.popleft())
                continue
            inflight.append(await self._send(self._next_edit()))
            await asyncio.sleep(self.rng.expovariate(rate))
        while inflight:
            await self._answer(inflight.popleft())

    async def edit_once(self) -> str:
        """Patch the own scene once and wait for the answer; return the value written."""
        mid = await self._send({"type": "patch", "table": "scenes", "id": self.scene_id, "column": "heading"})
        await self._answer(mid)
        value = self.edits[mid].value
        assert value is not None
        return value

    def _next_edit(self) -> dict[str, Any]:
        """Choose the next mutation: mostly patches of the own scene, some clip inserts, patches, deletes."""
        roll = self.rng.random()
        if roll < 0.2 or (roll < 0.45 and not self._live_clips):
            clip_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            row = {"id": clip_id, "scene_id": self.scene_id, "order_index": len(self._live_clips)}
            return {"type": "insert", "table": "clips", "row": row}
        if roll < 0.35:
            return {
                "type": "patch",
                "table": "clips",
                "id": self.rng.choice(self._live_clips),
                "column": "prompt",
            }
        if roll < 0.45:
            clip_id = self._live_clips.pop(self.rng.randrange(len(self._live_clips)))
            return {"type": "delete", "table": "clips", "id": clip_id}
        column = self.rng.choice(TRACKED["scenes"])
        return {"type": "patch", "table": "scenes", "id": self.scene_id, "column": column}

    async def _send(self, plan: dict[str, Any]) -> int:
        """Send the planned mutation (reconnecting first if the connection is closed); return its mid."""
        while True:
            mid = self.client.next_mid
            value = f"{self.name}.{mid}" + "~" * self.padding
            kind = plan["type"]
            if kind == "insert":
                frame = {**plan, "row": {**plan["row"], "prompt": value}}
                edit = Edit("insert", plan["table"], plan["row"]["id"], "prompt", value)
            elif kind == "patch":
                column = plan["column"]
                frame = {"type": "patch", "table": plan["table"], "id": plan["id"], "set": {column: value}}
                edit = Edit("patch", plan["table"], plan["id"], column, value)
            else:
                frame = plan
                edit = Edit("delete", plan["table"], plan["id"], None, None)
            try:
                sent = self.client.send_mutation(frame)
            except ClientClosed:
                await self.reconnect()
                continue
            assert sent == mid
            self.edits[mid] = edit
            if kind == "insert":
                self._live_clips.append(edit.row_id)
            return mid

    async def _answer(self, mid: int) -> None:
        """Wait for the answer to ``mid``, reconnecting (which resends it) whenever the connection drops."""
        while True:
            try:
                ack = await self.client.wait_ack(mid, timeout=ANSWER_WAIT)
            except ClientClosed:
                await self.reconnect()
                continue
            except TimeoutError:
                self.stalls += 1
                await self.reconnect()
                continue
            except EditorError as exc:
                self.refused[mid] = exc.code
                return
            self.acked[mid] = ack.seq
            return

    async def reconnect(self) -> None:
        """Open a new connection (the old one, if any, is closed first); retry until it works.

        Raises:
            AssertionError: no connection for :data:`RECONNECT_WITHIN` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_WITHIN
        while True:
            try:
                await self.client.reconnect()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                if loop.time() > deadline:
                    raise AssertionError(f"editor {self.name} could not reconnect: {exc!r}") from exc
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            self.reconnects += 1
            return

    # ---- what the database must hold -------------------------------------------------------------

    def expected(self) -> tuple[dict[tuple[str, str, str], int], dict[str, tuple[bool, int]]]:
        """What the acknowledged edits leave behind.

        Returns:
            (table, row, column) -> the mid of the last acknowledged value of that field; and clip id ->
            (whether the clip must exist, the mid of the last acknowledged insert or delete of it).
        """
        fields: dict[tuple[str, str, str], int] = {}
        clips: dict[str, tuple[bool, int]] = {}
        for mid in sorted(self.acked):
            edit = self.edits[mid]
            if edit.kind == "delete":
                clips[edit.row_id] = (False, mid)
                fields.pop((edit.table, edit.row_id, "prompt"), None)
                continue
            if edit.kind == "insert":
                clips[edit.row_id] = (True, mid)
            assert edit.column is not None
            fields[(edit.table, edit.row_id, edit.column)] = mid
        return fields, clips

    def lost(self, db: DbState) -> set[int]:
        """The acknowledged mids the database does not hold: unrecorded, or their value is not there."""
        recorded = db.recorded.get(self.client.client_id, -1)
        lost = {mid for mid in self.acked if mid > recorded}
        fields, clips = self.expected()
        for (table, row_id, column), mid in fields.items():
            rows = db.scenes if table == "scenes" else db.clips
            if rows.get(row_id, {}).get(column) != self.edits[mid].value:
                lost.add(mid)
        for clip_id, (present, mid) in clips.items():
            if (clip_id in db.clips) != present:
                lost.add(mid)
        return lost

    def view_differences(self, db: DbState, editors: list[ChaosEditor]) -> list[str]:
        """Where this editor's view of every editor's rows differs from the database."""
        differences = []
        view = self.client.view
        for owner in editors:
            scene = view.scenes.get(owner.scene_id, {})
            for column in TRACKED["scenes"]:
                if scene.get(column) != db.scenes.get(owner.scene_id, {}).get(column):
                    differences.append(f"scene {owner.scene_id}.{column}")
        in_view = {i: r.get("prompt") for i, r in view.clips.items() if r.get("scene_id") in _scenes(editors)}
        in_db = {i: r.get("prompt") for i, r in db.clips.items() if r.get("scene_id") in _scenes(editors)}
        differences += [
            f"clip {clip_id}"
            for clip_id in in_view.keys() | in_db.keys()
            if in_view.get(clip_id) != in_db.get(clip_id)
        ]
        return differences


def _scenes(editors: list[ChaosEditor]) -> set[str]:
    return {editor.scene_id for editor in editors}


def applied_twice(editors: list[ChaosEditor], db: DbState) -> set[tuple[str, int]]:
    """The mutations whose value was written to the database more than once, by (client id, mid).

    Values are unique per mutation, and a save writes only the fields of mutations it has not recorded
    yet, so a value written twice is a mutation applied twice (an insert's prompt written again means
    the row was inserted again, or its insert replayed as an update).
    """
    author = {
        edit.value: (editor.client.client_id, mid)
        for editor in editors
        for mid, edit in editor.edits.items()
        if edit.value is not None
    }
    # A value names its row and column too: counting the values is counting the writes of each mutation.
    written = Counter(value for _, _, _, value in db.writes if value is not None and value in author)
    return {author[value] for value, times in written.items() if times > 1}


@dataclass
class Counts:
    """The outcome of one chaos scenario."""

    scenario: str
    acknowledged: int
    lost: int
    applied_twice: int
    details: str

    def line(self) -> str:
        """The one-line summary printed at the end of the session."""
        head = (
            f"chaos {self.scenario}: acknowledged={self.acknowledged} lost={self.lost}"
            f" applied_twice={self.applied_twice}"
        )
        return f"{head} ({self.details})" if self.details else head


def reconnects(workload: Workload) -> str:
    """How often the editors reconnected, and how often because an answer did not come."""
    done = sum(editor.reconnects for editor in workload.editors)
    stalls = sum(editor.stalls for editor in workload.editors)
    return f"{done} reconnects ({stalls} after {ANSWER_WAIT:g} s without an answer)"


class Workload:
    """The editors of one chaos run: connect them, let them edit, stop them, settle and count.

    Args:
        url: the editor endpoint (the daemon keeps its port across restarts).
        project_id: the project they edit.
        scene_ids: one scene per editor.
        rng: the run's random generator; each editor gets its own generator seeded from it.
        rate: mutations per second per editor.
        padding: characters added to every written value.
    """

    def __init__(
        self,
        url: str,
        project_id: str,
        scene_ids: list[str],
        rng: random.Random,
        *,
        rate: float = 50.0,
        padding: int = 0,
    ) -> None:
        self.project_id = project_id
        self.rate = rate
        self.editors = [
            ChaosEditor(
                f"e{index}",
                EditorClient(url, project_id, request_timeout=ANSWER_WAIT, open_timeout=5.0),
                scene_id,
                random.Random(rng.getrandbits(64)),
                padding,
            )
            for index, scene_id in enumerate(scene_ids)
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect every editor and start editing."""
        for editor in self.editors:
            await editor.client.connect()
        self._tasks = [
            asyncio.create_task(editor.run(self._stop, self.rate), name=f"chaos.{editor.name}")
            for editor in self.editors
        ]

    async def stop(self) -> None:
        """Stop editing and wait until every mutation sent has its answer."""
        self._stop.set()
        async with asyncio.timeout(SETTLE + RECONNECT_WITHIN):
            await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        """Cancel the editing (if still running) and close every connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for editor in self.editors:
            await editor.client.close()

    def acknowledged(self) -> int:
        """How many mutations were acknowledged."""
        return sum(len(editor.acked) for editor in self.editors)

    async def unsaved(self, store: Store) -> int:
        """How many acknowledged edits the database does not hold yet (after a kill: only in the journal)."""
        acked = [(e.client.client_id, mid) for e in self.editors for mid in e.acked]
        db = await store.read(self.project_id)
        return sum(mid > db.recorded.get(client_id, -1) for client_id, mid in acked)

    async def settle(self, store: Store) -> DbState:
        """Wait until the database records every acknowledged mid; return what it holds then.

        A run that never gets there within :data:`SETTLE` seconds is counted as it is: the edits the
        database does not hold are lost.
        """
        deadline = asyncio.get_running_loop().time() + SETTLE
        while True:
            db = await store.read(self.project_id)
            missing = [
                max(e.acked, default=-1) > db.recorded.get(e.client.client_id, -1) for e in self.editors
            ]
            if not any(missing) or asyncio.get_running_loop().time() > deadline:
                return db
            await asyncio.sleep(0.1)

    async def views_agree(self, store: Store) -> None:
        """Wait until every editor's view of the editors' rows equals the database."""
        last: list[str] = []

        async def agree() -> bool:
            db = await store.read(self.project_id)
            differing = [f"{e.name}: {d}" for e in self.editors for d in e.view_differences(db, self.editors)]
            last[:] = differing[:5]
            return not differing

        await wait_for(agree, lambda: f"the editors' views to equal the database; differing: {last}", SETTLE)

    def count(self, scenario: str, db: DbState, details: Callable[[], str]) -> Counts:
        """Count the acknowledged, lost and twice-applied mutations of this run."""
        lost = sum(len(editor.lost(db)) for editor in self.editors)
        twice = len(applied_twice(self.editors, db))
        return Counts(scenario, self.acknowledged(), lost, twice, details())
