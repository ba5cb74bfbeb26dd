"""``Studio`` straight to Supabase (PostgREST and Storage) with the service key.

Writes are plain PostgREST calls, except those that must be one transaction (``sync_scenes``,
``reorder_clips``): they go as one ``syncd_apply`` batch, under a client id of their own, as the
daemon's saves do. A running syncd hears every write through Realtime and passes it to the editors.
The same checks as the daemon's HTTP API run first, so a refused call changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from postgrest.exceptions import APIError

from syncd.api.projects import clip_order, in_project, scene_list
from syncd.core.schema import SideTable
from syncd.errors import EditRejected, UpstreamError
from syncd.pages import every_row
from syncd.records import (
    SupabaseRecords,
    check_id,
    check_repeat,
    create_once,
    export_step,
    given_or_new_id,
    validate_new,
)
from syncd.records import validate_set as validate_other
from syncd.rows import validate_insert, validate_set
from syncd.storage import (
    DEFAULT_SIGNED_SECONDS,
    SupabaseFiles,
    bucket_rule,
    check_expiry,
    check_upload,
    project_of,
)
from syncd.studio.base import Row, Studio, StudioError, Upload, listed

REQUEST_TIMEOUT = 30.0
"""Seconds one request to Supabase may take."""


def _refused(exc: EditRejected) -> StudioError:
    return StudioError(exc.code, exc.message)


_T = TypeVar("_T")


def _translated(method: Callable[..., Awaitable[_T]]) -> Callable[..., Awaitable[_T]]:
    """The method, with what Supabase or its clients raise turned into :class:`StudioError`."""

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> _T:
        try:
            return await method(*args, **kwargs)
        except EditRejected as exc:
            raise _refused(exc) from None
        except UpstreamError as exc:
            raise StudioError("unavailable", str(exc)) from None
        except httpx.HTTPError as exc:
            raise StudioError("unavailable", f"cannot reach Supabase ({type(exc).__name__})") from None
        except APIError as exc:
            raise StudioError("bad_request", f"Supabase refused the call: {exc.message}") from None

    return call


_C = TypeVar("_C", bound=type)


def _translate_errors(cls: _C) -> _C:
    """Apply :func:`_translated` to every coroutine method of ``cls``.

    Private ones too: the base class's public methods (``upload``) call them, and are not in ``cls``.
    """
    for name, value in list(vars(cls).items()):
        if inspect.iscoroutinefunction(value):
            setattr(cls, name, _translated(value))
    return cls


@_translate_errors
class SupabaseStudio(Studio):
    """The studio on a Supabase project.

    Args:
        url: ``SUPABASE_URL``.
        service_key: ``SUPABASE_SERVICE_KEY`` (the ``service_role`` key).
    """

    mode = "supabase"

    def __init__(self, url: str, service_key: str) -> None:
        self._url = url
        self._key = service_key
        self._client: Any = None
        self._http: httpx.AsyncClient | None = None
        # A clip's place after the last one is read, then written: two at once would read the same.
        self._appending: dict[str, asyncio.Lock] = {}

    async def _db(self) -> SupabaseRecords:
        return SupabaseRecords(await self._supabase())

    async def _supabase(self) -> Any:
        if self._client is None:
            from supabase import AsyncClientOptions, acreate_client

            self._http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
            # Reads fail at once, as writes do and as through the daemon: supabase-py would otherwise
            # sleep up to 7 s retrying a read, and the caller owns the retry policy (docs/studio.md).
            options = AsyncClientOptions(httpx_client=self._http, postgrest_client_retry=False)
            self._client = await acreate_client(self._url, self._key, options=options)
        return self._client

    async def aclose(self) -> None:
        """Close the client's connections."""
        self._client = None
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def _project(self, project_id: str) -> str:
        pid = check_id(project_id, "project_id")
        if await (await self._db()).get("projects", pid) is None:
            raise StudioError("not_found", f"project {pid} does not exist")
        return pid

    # -- files ------------------------------------------------------------------------------------------

    async def _upload(self, upload: Upload) -> str:
        """Check the bucket's rules and the project, then upload to Storage."""
        bucket, path, data, content_type = upload.bucket, upload.path, upload.data, upload.content_type
        upsert, expires_in = upload.upsert, upload.expires_in
        await self._project(check_upload(bucket, path, content_type, len(data)))
        files = SupabaseFiles(await self._supabase())
        await files.upload(bucket, path, data, content_type, upsert=upsert)
        if bucket_rule(bucket).public:
            return await files.public_url(bucket, path)
        return await files.signed_url(bucket, path, check_expiry(expires_in))

    async def signed_url(self, bucket: str, path: str, expires_in: int = DEFAULT_SIGNED_SECONDS) -> str:
        """Storage's signed URL."""
        bucket_rule(bucket)
        project_of(path)
        return await SupabaseFiles(await self._supabase()).signed_url(bucket, path, check_expiry(expires_in))

    async def public_url(self, bucket: str, path: str) -> str:
        """Storage's public URL (public buckets only)."""
        project_of(path)
        return await SupabaseFiles(await self._supabase()).public_url(bucket, path)

    async def remove_file(self, bucket: str, path: str) -> bool:
        """Remove from Storage."""
        bucket_rule(bucket)
        project_of(path)
        return await SupabaseFiles(await self._supabase()).remove(bucket, path)

    # -- projects, scenes, clips --------------------------------------------------------------------------

    async def create_project(self, title: str = "Untitled project", **fields: Any) -> Row:
        """Insert a project; the same id and values again return the existing row."""
        values = dict(fields)
        project_id = given_or_new_id(values.pop("id", None), "id")
        user_id = values.pop("user_id", None)
        row = {"id": project_id, "user_id": None if user_id is None else check_id(user_id, "user_id")}
        row.update(validate_new("projects", {"title": title, **values}))
        return _public((await create_once(await self._db(), "projects", row, row, "project"))[0])

    async def update_project(self, project_id: str, **fields: Any) -> Row:
        """Update the project's row."""
        pid = await self._project(project_id)
        values = validate_set("projects", dict(fields))
        client = await self._supabase()
        answer = await client.table("projects").update(values).eq("id", pid).execute()
        return _public(answer.data[0])

    async def delete_project(self, project_id: str) -> None:
        """Delete the project's row (the database cascades), then its stored files, which no cascade
        reaches."""
        pid = await self._project(project_id)
        await (await self._db()).delete("projects", pid)
        try:
            await SupabaseFiles(await self._supabase()).remove_project(pid)
        except EditRejected as exc:
            raise StudioError(
                exc.code, f"project {pid} is deleted, but not all of its files: {exc.message}"
            ) from exc

    async def load_project(self, project_id: str) -> Row:
        """Read the project and its ordered scenes and clips."""
        pid = await self._project(project_id)
        client = await self._supabase()
        project = (await client.table("projects").select("*").eq("id", pid).execute()).data[0]
        scenes = await every_row(
            lambda: client.table("scenes").select("*").eq("project_id", pid).order("scene_index").order("id")
        )
        clips = await every_row(
            lambda: client.table("clips").select("*").eq("project_id", pid).order("order_index").order("id")
        )
        return {
            "project": _public(project),
            "scenes": [_public(r) for r in scenes],
            "clips": [_public(r) for r in clips],
        }

    async def sync_scenes(self, project_id: str, scenes: Iterable[Mapping[str, Any]]) -> list[Row]:
        """Insert, update, delete and re-index the scenes in one ``syncd_apply`` transaction."""
        view = await self.load_project(project_id)
        wanted = scene_list(listed(scenes))
        current = {str(r["id"]): r for r in view["scenes"]}
        keep = {row["id"] for row in wanted}
        batch = _Batch(str(view["project"]["id"]))
        for scene_id in current:
            if scene_id not in keep:
                batch.delete("scenes", scene_id)
        for row in wanted:
            old = current.get(row["id"])
            if old is None:
                batch.insert("scenes", row["id"], validate_insert("scenes", row))
                continue
            changed = {k: v for k, v in row.items() if k != "id" and old.get(k) != v}
            if changed:
                batch.update("scenes", row["id"], validate_set("scenes", changed))
        await batch.apply(await self._supabase())
        return list((await self.load_project(project_id))["scenes"])

    async def add_clip(self, project_id: str, fields: Mapping[str, Any]) -> Row:
        """Insert a clip after the last one (unless ``order_index`` is given).

        It goes through ``syncd_apply``, as the daemon's writes do: a ``scene_id`` whose scene is gone
        (deleted while the clip rendered) becomes null there, and the clip is kept.
        """
        pid = await self._project(project_id)
        row = dict(fields)
        if row.pop("project_id", None) not in (None, pid):
            raise StudioError("bad_request", "project_id: not the project of the path")
        row["id"] = given_or_new_id(row.get("id"), "id")
        given = validate_insert("clips", row)
        client = await self._supabase()
        existing = (await client.table("clips").select("*").eq("id", row["id"]).execute()).data
        if existing:
            # The same call again (the first one's answer was lost) returns the clip it added.
            same = ["project_id", *(name for name in row if name != "id")]
            check_repeat(existing[0], {**given, "project_id": pid}, same, "clip")
            return _public(existing[0])
        async with self._appending.setdefault(pid, asyncio.Lock()):
            if "order_index" not in row:
                last = (
                    await client.table("clips")
                    .select("order_index")
                    .eq("project_id", pid)
                    .order("order_index", desc=True)
                    .limit(1)
                    .execute()
                )
                row["order_index"] = (last.data[0]["order_index"] + 1) if last.data else 0
            batch = _Batch(pid)
            batch.insert("clips", row["id"], validate_insert("clips", row))
            await batch.apply(client)
        added = (await client.table("clips").select("*").eq("id", row["id"]).execute()).data
        if not added or added[0]["project_id"] != pid:
            raise StudioError("conflict", f"clip {row['id']} exists in another project")
        return _public(added[0])

    async def save_clip(self, project_id: str, clip_id: str, **fields: Any) -> Row:
        """Update a clip of the project."""
        pid = await self._project(project_id)
        values = validate_set("clips", dict(fields))
        cid = check_id(clip_id, "clip_id")
        client = await self._supabase()
        answer = await client.table("clips").update(values).eq("id", cid).eq("project_id", pid).execute()
        if not answer.data:
            raise StudioError("not_found", f"clip {cid} is not in this project")
        return _public(answer.data[0])

    async def delete_clip(self, project_id: str, clip_id: str) -> None:
        """Delete a clip of the project."""
        pid = await self._project(project_id)
        cid = check_id(clip_id, "clip_id")
        client = await self._supabase()
        answer = await client.table("clips").delete().eq("id", cid).eq("project_id", pid).execute()
        if not answer.data:
            raise StudioError("not_found", f"clip {cid} is not in this project")

    async def reorder_clips(self, project_id: str, clip_ids: Iterable[str]) -> list[Row]:
        """Set ``order_index`` of every clip that moves, in one transaction."""
        view = await self.load_project(project_id)
        # EditRejected becomes StudioError in _translated, as everywhere in this class.
        ids = clip_order(listed(clip_ids))
        for clip_id in ids:
            in_project(view["clips"], clip_id, "clip")
        clips = [str(c["id"]) for c in view["clips"]]
        order = ids + [c for c in clips if c not in ids]
        batch = _Batch(str(view["project"]["id"]))
        for position, clip_id in enumerate(order):
            old = next(c for c in view["clips"] if c["id"] == clip_id)
            if old["order_index"] != position:
                batch.update("clips", clip_id, {"order_index": position})
        await batch.apply(await self._supabase())
        return list((await self.load_project(project_id))["clips"])

    # -- voices, exports, audio files ---------------------------------------------------------------------

    async def list_voices(self, user_id: str | None = None) -> list[Row]:
        """The voices of a user (None: the anonymous studio's)."""
        owner = None if user_id is None else check_id(user_id, "user_id")
        return await (await self._db()).select("voices", {"user_id": owner})

    async def create_voice(self, **fields: Any) -> Row:
        """Insert a voice."""
        values = dict(fields)
        voice_id = given_or_new_id(values.pop("id", None), "id")
        user_id = values.pop("user_id", None)
        row = {"id": voice_id, "user_id": None if user_id is None else check_id(user_id, "user_id")}
        row.update(validate_new("voices", values))
        return (await create_once(await self._db(), "voices", row, ["user_id", *values], "voice"))[0]

    async def update_voice(self, voice_id: str, **fields: Any) -> Row:
        """Update a voice."""
        return await (await self._db()).update(
            "voices", check_id(voice_id, "voice_id"), validate_other("voices", fields)
        )

    async def delete_voice(self, voice_id: str) -> None:
        """Delete a voice."""
        await (await self._db()).delete("voices", str(voice_id).lower())

    async def create_export(self, project_id: str, **fields: Any) -> Row:
        """Insert an export of the project (``queued``)."""
        return await self._insert_for(project_id, "exports", fields)

    async def update_export(self, export_id: str, **fields: Any) -> Row:
        """Update an export; its status never goes back."""
        values = validate_other("exports", fields)
        eid = check_id(export_id, "export_id")
        return await (await self._db()).update("exports", eid, values, lambda old: export_step(old, values))

    async def list_exports(self, project_id: str) -> list[Row]:
        """The project's exports."""
        return await (await self._db()).select("exports", {"project_id": await self._project(project_id)})

    async def create_audio_file(self, project_id: str, **fields: Any) -> Row:
        """Insert an audio file of the project."""
        return await self._insert_for(project_id, "audio_files", fields)

    async def _insert_for(self, project_id: str, table: SideTable, fields: dict[str, Any]) -> Row:
        """Insert a new row of ``table`` that belongs to the project."""
        pid = await self._project(project_id)
        values = dict(fields)
        row = {"id": given_or_new_id(values.pop("id", None), "id"), "project_id": pid}
        row.update(validate_new(table, values))
        what = "export" if table == "exports" else "audio file"
        return (await create_once(await self._db(), table, row, ["project_id", *values], what))[0]

    async def list_audio_files(self, project_id: str) -> list[Row]:
        """The project's audio files."""
        return await (await self._db()).select("audio_files", {"project_id": await self._project(project_id)})

    async def delete_audio_file(self, audio_id: str) -> None:
        """Delete an audio file row."""
        await (await self._db()).delete("audio_files", str(audio_id).lower())


class _Batch:
    """One ``syncd_apply`` transaction under a client id of its own (mids 1, 2, …)."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.client_id = str(uuid.uuid4())
        self.ops: list[dict[str, Any]] = []

    def _by(self) -> list[Any]:
        return [self.client_id, len(self.ops) + 1]

    def insert(self, table: str, row_id: str, row: Mapping[str, Any]) -> None:
        self.ops.append({"op": "insert", "table": table, "id": row_id, "row": dict(row), "by": self._by()})

    def update(self, table: str, row_id: str, values: Mapping[str, Any]) -> None:
        by = self._by()
        fields = {name: {"value": value, "by": by} for name, value in values.items()}
        self.ops.append({"op": "update", "table": table, "id": row_id, "set": fields, "by": by})

    def delete(self, table: str, row_id: str) -> None:
        self.ops.append({"op": "delete", "table": table, "id": row_id, "by": self._by()})

    async def apply(self, client: Any) -> None:
        if not self.ops:
            return
        mutations = [op["by"] for op in self.ops]
        ops = [{k: v for k, v in op.items() if not (k == "by" and op["op"] == "update")} for op in self.ops]
        batch = {"project_id": self.project_id, "batch_id": 1, "ops": ops, "mutations": mutations}
        await client.rpc("syncd_apply", {"batch": batch}).execute()


def _public(row: Mapping[str, Any]) -> Row:
    return {k: v for k, v in row.items() if k != "version"}
