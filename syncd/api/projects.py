"""Projects, scenes and clips through the HTTP API.

Creating and deleting a project are whole-row writes to the database. Every other write (a project's
fields, the scene list, clips) is a set of mutations of the project's service session
(:mod:`syncd.service`): ordered with the editors' edits, broadcast at once, saved with the debounce or
at once when the caller asks (``save``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncd.api.access import Caller, Gate
from syncd.backend import Backend
from syncd.core.effects import Snapshot
from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Mutation, Patch, Reorder
from syncd.errors import EditRejected, UpstreamError
from syncd.host import ProjectHost
from syncd.records import Records, check_id, check_repeat, create_once, given_or_new_id, validate_new
from syncd.rows import validate_insert, validate_set
from syncd.service import Written

Row = dict[str, Any]

MAX_SCENES = 10_000
"""The longest scene list ``sync_scenes`` takes (the limit of ``reorder``)."""


def view_rows(view: Snapshot) -> Row:
    """A live view as the API answers it: ``{"project", "scenes", "clips", "seq"}``, rows ordered."""
    return {
        "project": dict(view.project),
        "scenes": [dict(r) for r in view.scenes],
        "clips": [dict(r) for r in view.clips],
        "seq": view.seq,
        "saved_seq": view.saved_seq,
    }


class ProjectsApi:
    """The operations on projects, scenes and clips, with their access rules.

    Args:
        host: the project host (its service sessions take the writes).
        backend: the database, for whether a project exists and whose it is.
        records: whole-row writes (creating and deleting projects).
        gate: who may do what.
    """

    def __init__(self, host: ProjectHost, backend: Backend, records: Records, gate: Gate) -> None:
        self._host = host
        self._backend = backend
        self._records = records
        self._gate = gate

    async def owner(self, caller: Caller, project_id: object) -> ProjectId:
        """Check that the project exists and that the caller may use it; return its id.

        Raises:
            EditRejected: ``bad_request``, ``not_found``, ``forbidden``/``unauthorized`` or ``unavailable``.
        """
        pid = ProjectId(check_id(project_id, "project_id"))
        try:
            exists, owner = await self._backend.project_owner(pid)
        except (UpstreamError, OSError) as exc:
            raise EditRejected("unavailable", "the database cannot be reached; try again") from exc
        if not exists:
            raise EditRejected("not_found", f"project {pid} does not exist")
        self._gate.check_owner(caller, owner, f"project {pid}")
        return pid

    # -- whole projects ---------------------------------------------------------------------------------

    async def create(self, caller: Caller, body: Mapping[str, Any]) -> tuple[Row, bool]:
        """Create a project; the same id and body again return the same row (created False).

        Raises:
            EditRejected: a bad field, a user other than the caller's, or an id already used otherwise.
        """
        fields = dict(body)
        project_id = given_or_new_id(fields.pop("id", None), "id")
        user_id = fields.pop("user_id", caller.user_id)
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if not caller.service and user_id != caller.user_id:
            raise EditRejected("forbidden", "an editor creates projects for itself only (user_id)")
        if user_id is None and not caller.service and not self._gate.allow_anonymous:
            raise EditRejected("unauthorized", "anonymous projects need anonymous access to be on")
        row = {"id": project_id, "user_id": user_id, **validate_new("projects", fields)}
        made, created = await create_once(self._records, "projects", row, row, "project")
        return _public(made), created

    async def list_for(self, caller: Caller, user_id: str | None, all_users: bool) -> list[Row]:
        """The caller's projects (a service: every project, or one user's)."""
        where: dict[str, str | None] = {"user_id": caller.user_id}
        if caller.service and all_users:
            where = {}
        elif caller.service:
            where = {"user_id": None if user_id is None else check_id(user_id, "user_id")}
        return [_public(self._live(row)) for row in await self._records.select("projects", where)]

    def _live(self, row: Row) -> Row:
        """A stored project row with the edits of the open project that the debounce has not saved."""
        status = self._host.engine.status(ProjectId(str(row["id"])))
        return row if status is None or status.project is None else {**row, **status.project}

    async def delete(self, caller: Caller, project_id: object) -> str:
        """Delete a project with its scenes, clips, exports and audio files; its editors are closed (4404).

        Returns:
            The project's id as stored.
        """
        pid = await self.owner(caller, project_id)
        await self._records.delete("projects", pid)
        # The engine learns it from a re-read that finds nothing: it closes the editors with 4404.
        self._host.receive_remote(pid, None)
        return pid

    async def load(self, caller: Caller, project_id: object) -> Row:
        """The live view of a project (what editors see, unsaved edits included)."""
        pid = await self.owner(caller, project_id)
        return view_rows(await self._host.service.view(pid))

    # -- writes through the engine ----------------------------------------------------------------------

    async def update(
        self, caller: Caller, project_id: object, fields: Mapping[str, Any], save: bool
    ) -> Written:
        """Change fields of the project."""
        caller.require_service()
        pid = await self.owner(caller, project_id)
        values = validate_set("projects", dict(fields))
        return await self._host.service.write(
            pid, lambda view: [Patch(0, "projects", RowId(pid), values)], save=save
        )

    async def add_clip(
        self, caller: Caller, project_id: object, fields: Mapping[str, Any], save: bool
    ) -> tuple[Row, bool]:
        """Add a clip; it goes after the last clip unless ``order_index`` is given.

        Returns:
            The clip, and whether this call added it: the same id and fields again return the clip the
            first call added (a renderer that lost the answer may repeat the call).

        Raises:
            EditRejected: ``conflict`` when the id names a clip with other values.
        """
        caller.require_service()
        pid = await self.owner(caller, project_id)
        row = dict(fields)
        if row.pop("project_id", None) not in (None, pid):
            raise EditRejected("bad_request", "project_id: not the project of the path")
        row["id"] = given_or_new_id(row.get("id"), "id")
        given = validate_insert("clips", row)  # refuse bad fields before the position is worked out
        same = [name for name in row if name != "id"]
        added = True

        def build(view: Snapshot) -> Sequence[Mutation]:
            nonlocal added
            existing = next((c for c in view.clips if c["id"] == row["id"]), None)
            if existing is not None:
                check_repeat(existing, given, same, "clip")
                added = False
                return []
            if "order_index" not in row:
                row["order_index"] = 1 + max((_index(c["order_index"]) for c in view.clips), default=-1)
            return [Insert(0, "clips", validate_insert("clips", row))]

        written = await self._host.service.write(pid, build, save=save)
        return _find(written.view.clips, row["id"]), added

    async def update_clip(
        self, caller: Caller, project_id: object, clip_id: object, fields: Mapping[str, Any], save: bool
    ) -> Row:
        """Change fields of a clip; returns the clip."""
        caller.require_service()
        pid = await self.owner(caller, project_id)
        cid = check_id(clip_id, "clip_id")
        values = validate_set("clips", dict(fields))
        written = await self._host.service.write(
            pid,
            lambda view: [Patch(0, "clips", RowId(in_project(view.clips, cid, "clip")), values)],
            save=save,
        )
        return _find(written.view.clips, cid)

    async def delete_clip(self, caller: Caller, project_id: object, clip_id: object, save: bool) -> Written:
        """Remove a clip."""
        caller.require_service()
        pid = await self.owner(caller, project_id)
        cid = check_id(clip_id, "clip_id")
        return await self._host.service.write(
            pid, lambda view: [Delete(0, "clips", RowId(in_project(view.clips, cid, "clip")))], save=save
        )

    async def reorder_clips(
        self, caller: Caller, project_id: object, clip_ids: object, save: bool
    ) -> Written:
        """Put the listed clips first, in that order (``order_index`` 0, 1, …); the others follow."""
        caller.require_service()
        pid = await self.owner(caller, project_id)
        ids = tuple(RowId(i) for i in clip_order(clip_ids))

        def build(view: Snapshot) -> Sequence[Mutation]:
            for clip_id in ids:
                in_project(view.clips, clip_id, "clip")
            return [Reorder(0, "clips", ids)]

        return await self._host.service.write(pid, build, save=save)

    async def sync_scenes(self, caller: Caller, project_id: object, scenes: object, save: bool) -> Written:
        """Make the project's scene list exactly ``scenes``, in that order, in one step.

        A listed scene with the id of one of the project's scenes updates it, one without an id (or with
        a new one) is inserted, a scene not listed is deleted (its clips lose their ``scene_id``); every
        ``scene_index`` becomes the position in the list.
        """
        caller.require_service()
        pid = await self.owner(caller, project_id)
        wanted = scene_list(scenes)
        return await self._host.service.write(pid, lambda view: _sync(view, wanted), save=save)


def clip_order(clip_ids: object) -> list[str]:
    """Check the clip ids of ``reorder_clips``: 1 to :data:`MAX_SCENES` distinct UUIDs, in lower case.

    Raises:
        EditRejected: ``bad_request`` naming the first wrong id.
    """
    if not isinstance(clip_ids, list) or not clip_ids or len(clip_ids) > MAX_SCENES:
        raise EditRejected("bad_request", f"clip_ids: a list of 1 to {MAX_SCENES} clip ids")
    ids = [check_id(i, f"clip_ids[{n}]") for n, i in enumerate(clip_ids)]
    if len(set(ids)) != len(ids):
        raise EditRejected("bad_request", "clip_ids: an id is listed twice")
    return ids


def scene_list(scenes: object) -> list[Row]:
    """Check a scene list for ``sync_scenes``; return each row with its id and position.

    Raises:
        EditRejected: ``bad_request`` naming the first wrong scene and field.
    """
    if not isinstance(scenes, list) or len(scenes) > MAX_SCENES:
        raise EditRejected("bad_request", f"scenes: a list of at most {MAX_SCENES} scenes")
    wanted: list[Row] = []
    seen: set[str] = set()
    for n, scene in enumerate(scenes):
        if not isinstance(scene, dict):
            raise EditRejected("bad_request", f"scenes[{n}]: must be an object")
        row = dict(scene)
        row.pop("project_id", None)
        row.pop("created_at", None)
        row.pop("updated_at", None)
        row["id"] = given_or_new_id(row.get("id"), f"scenes[{n}].id")
        if row["id"] in seen:
            raise EditRejected("bad_request", f"scenes[{n}].id: listed twice")
        seen.add(row["id"])
        row["scene_index"] = n
        try:
            validate_insert("scenes", row)
        except EditRejected as exc:
            raise EditRejected("bad_request", f"scenes[{n}].{exc.message.removeprefix('row.')}") from None
        wanted.append(row)
    return wanted


def _sync(view: Snapshot, wanted: list[Row]) -> list[Mutation]:
    current = {str(r["id"]): r for r in view.scenes}
    keep = {row["id"] for row in wanted}
    gone = [scene_id for scene_id in current if scene_id not in keep]
    mutations: list[Mutation] = [Delete(0, "scenes", RowId(scene_id)) for scene_id in gone]
    for clip in view.clips:
        if clip.get("scene_id") in gone:
            mutations.append(Patch(0, "clips", RowId(str(clip["id"])), {"scene_id": None}))
    for row in wanted:
        old = current.get(row["id"])
        if old is None:
            mutations.append(Insert(0, "scenes", validate_insert("scenes", row)))
            continue
        changed = {k: v for k, v in row.items() if k != "id" and old.get(k) != v}
        if changed:
            mutations.append(Patch(0, "scenes", RowId(row["id"]), validate_set("scenes", changed)))
    return mutations


def in_project(rows: Sequence[Mapping[str, Any]], row_id: str, what: str) -> str:
    """``row_id``, if one of ``rows`` has it.

    Raises:
        EditRejected: ``not_found``, naming the row as ``what`` (``clip``).
    """
    if not any(r["id"] == row_id for r in rows):
        raise EditRejected("not_found", f"{what} {row_id} is not in this project")
    return row_id


def _find(rows: Sequence[Mapping[str, Any]], row_id: str) -> Row:
    for row in rows:
        if row["id"] == row_id:
            return dict(row)
    raise EditRejected("conflict", f"row {row_id} was removed meanwhile")


def _index(value: object) -> int:
    return value if isinstance(value, int) else 0


def _public(row: Row) -> Row:
    """A row as editors see it: without ``version``, which is syncd's business."""
    return {k: v for k, v in row.items() if k != "version"}
