"""Rows, projects and an engine set up the way most core tests need them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from syncd.core.effects import Effect, WriteBatch
from syncd.core.engine import SyncEngine
from syncd.core.ids import ClientId, ConnId, Epoch, ProjectId, RowId, UserId
from syncd.core.inputs import Mutation, ProjectRows
from syncd.core.values import JsonValue

P = ProjectId("p-1")
EPOCH: Epoch = "epoch-1"
A = ClientId("client-a")
B = ClientId("client-b")
CONN_A = ConnId("conn-a")
CONN_B = ConnId("conn-b")
USER = UserId("user-1")
S1, S2, S3 = RowId("s-1"), RowId("s-2"), RowId("s-3")
C1, C2 = RowId("c-1"), RowId("c-2")

E = TypeVar("E")


def project_row(version: int = 1, **fields: JsonValue) -> dict[str, JsonValue]:
    """The project's row."""
    return {"id": P, "title": "Demo", "script": "", "version": version, **fields}


def scene(row_id: str, index: JsonValue, version: int = 1, **fields: JsonValue) -> dict[str, JsonValue]:
    """A scene row as the database returns it."""
    return {"id": row_id, "project_id": P, "scene_index": index, "heading": "", "version": version, **fields}


def clip(row_id: str, index: JsonValue, version: int = 1, **fields: JsonValue) -> dict[str, JsonValue]:
    """A clip row as the database returns it."""
    return {"id": row_id, "project_id": P, "order_index": index, "prompt": "", "version": version, **fields}


def project_rows(
    scenes: Sequence[dict[str, JsonValue]] = (),
    clips: Sequence[dict[str, JsonValue]] = (),
    project: dict[str, JsonValue] | None = None,
) -> ProjectRows:
    """A full read of the project (the default project row when none is given)."""
    return ProjectRows(project_row() if project is None else project, tuple(scenes), tuple(clips))


def default_rows() -> ProjectRows:
    """The project with scenes s-1, s-2, s-3 (indexes 0, 1, 2) and clip c-1."""
    return project_rows([scene(S1, 0), scene(S2, 1), scene(S3, 2)], [clip(C1, 0)])


def engine(**options: float) -> SyncEngine:
    """An engine with deterministic jitter (0.5: every retry delay is 3/4 of its base)."""
    return SyncEngine(jitter=lambda: 0.5, **options)  # type: ignore[arg-type]


def loaded(
    rows: ProjectRows | None = None,
    *,
    conns: Sequence[tuple[ConnId, ClientId]] = ((CONN_A, A),),
    **options: float,
) -> SyncEngine:
    """An engine with P loaded (``default_rows`` unless given), connections attached, no effects queued."""
    sync = engine(**options)
    sync.open_project(P, EPOCH, 0.0)
    sync.receive_loaded(P, default_rows() if rows is None else rows, 0.0)
    for conn, client in conns:
        sync.attach(conn, client, USER, P, None, 0.0)
    sync.take_effects()
    return sync


def send(sync: SyncEngine, mutation: Mutation, now: float = 0.0, conn: ConnId = CONN_A) -> list[Effect]:
    """Send a mutation and return the effects."""
    sync.receive_mutation(conn, mutation, now)
    return sync.take_effects()


def of_type(effects: Sequence[object], kind: type[E]) -> list[E]:
    """The effects of one type, in order."""
    return [effect for effect in effects if isinstance(effect, kind)]


def only(effects: Sequence[object], kind: type[E]) -> E:
    """The single effect of one type."""
    found = of_type(effects, kind)
    assert len(found) == 1, effects
    return found[0]


def cut(sync: SyncEngine, now: float = 10.0) -> WriteBatch:
    """Let the debounce fire and return the write batch it sends."""
    sync.handle_timer(now)
    return only(sync.take_effects(), WriteBatch)
