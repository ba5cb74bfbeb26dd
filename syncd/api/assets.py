"""Voices, exports, audio files and stored files through the HTTP API.

Voices belong to a user (``user_id`` NULL: the anonymous studio's). Exports and audio files belong to
a project; a change to one of them is passed to the project's editors (``on_change``). Files go to the
buckets of :mod:`syncd.storage`, in either mode's file store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from syncd.api.access import Caller, Gate
from syncd.api.projects import ProjectsApi
from syncd.core.schema import SideTable
from syncd.errors import EditRejected
from syncd.records import (
    OtherTable,
    Records,
    check_id,
    create_once,
    export_step,
    given_or_new_id,
    validate_new,
    validate_set,
)
from syncd.storage import FileStore, bucket_rule, check_expiry, check_upload, project_of
from syncd.wire import ChangeOp

log = logging.getLogger(__name__)

Row = dict[str, Any]
OnChange = Callable[[str, SideTable, ChangeOp, Row], None]
"""Called with a project, a table (``exports`` or ``audio_files``), what happened and the row."""

UPLOAD_URL_SECONDS = 7 * 24 * 3600
"""How long the signed URL that an upload returns is valid, unless the caller says otherwise."""


class AssetsApi:
    """The operations on voices, exports, audio files and files, with their access rules.

    Args:
        projects: for whether a project exists and whether the caller may use it.
        records: the rows.
        files: the file store.
        gate: who may do what.
        on_change: tells the editors of a project about an export or audio file.
        reread_open: has every open project read again, after a write that changed rows of theirs
            the backend has no change feed for (local mode); None where the feed reports them.
    """

    def __init__(
        self,
        projects: ProjectsApi,
        records: Records,
        files: FileStore,
        gate: Gate,
        on_change: OnChange,
        reread_open: Callable[[], None] | None = None,
    ) -> None:
        self._projects = projects
        self._records = records
        self._files = files
        self._gate = gate
        self._on_change = on_change
        self._reread_open = reread_open

    # -- voices -----------------------------------------------------------------------------------------

    async def list_voices(self, caller: Caller, user_id: str | None, all_users: bool) -> list[Row]:
        """The caller's voices (a service: every voice, or one user's)."""
        if caller.service:
            if all_users:
                return await self._records.select("voices", {})
            owner = None if user_id is None else check_id(user_id, "user_id")
            return await self._records.select("voices", {"user_id": owner})
        return await self._records.select("voices", {"user_id": caller.user_id})

    async def create_voice(self, caller: Caller, body: Mapping[str, Any]) -> tuple[Row, bool]:
        """Add a voice for the caller (a service may name any user, or none).

        Returns:
            The voice, and whether this call made it: the same id and body again return the same voice.
        """
        fields = dict(body)
        voice_id = given_or_new_id(fields.pop("id", None), "id")
        user_id = fields.pop("user_id", caller.user_id)
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if not caller.service and user_id != caller.user_id:
            raise EditRejected("forbidden", "an editor adds voices for itself only (user_id)")
        row = {"id": voice_id, "user_id": user_id, **validate_new("voices", fields)}
        return await create_once(self._records, "voices", row, ["user_id", *fields], "voice")

    async def update_voice(self, caller: Caller, voice_id: object, body: Mapping[str, Any]) -> Row:
        """Change a voice of the caller's."""
        vid = check_id(voice_id, "voice_id")
        values = validate_set("voices", body)
        return await self._records.update(
            "voices", vid, values, lambda old: self._gate.check_owner(caller, old["user_id"], f"voice {vid}")
        )

    async def delete_voice(self, caller: Caller, voice_id: object) -> None:
        """Delete a voice of the caller's (scenes that used it keep no voice)."""
        vid = check_id(voice_id, "voice_id")
        await self._own_row(caller, "voices", vid)
        await self._records.delete("voices", vid)
        if self._reread_open is not None:
            # The database set the voice of its scenes and audio files to null, where no change feed
            # tells the open projects (local mode): they read themselves again.
            self._reread_open()

    async def remove_files_of(self, project_id: str) -> None:
        """Remove the stored files of a project whose row is deleted: its clips, audio, exports and
        thumbnails, which no database cascade reaches. Files that stay are logged, not refused: the
        project is gone either way."""
        try:
            removed = await self._files.remove_project(project_id)
        except (EditRejected, OSError) as exc:
            log.warning("project %s is deleted but some of its files stay: %s", project_id, exc)
            return
        if removed:
            log.info("project %s: removed its %d stored files", project_id, removed)

    # -- exports ----------------------------------------------------------------------------------------

    async def create_export(
        self, caller: Caller, project_id: object, body: Mapping[str, Any]
    ) -> tuple[Row, bool]:
        """Request an export of a project (editors: only ``format`` and ``resolution``); it starts queued.

        Returns:
            The export, and whether this call made it: the same id and body again return the same export.
        """
        pid = await self._projects.owner(caller, project_id)
        fields = dict(body)
        if not caller.service:
            extra = sorted(set(fields) - {"format", "resolution"})
            if extra:
                raise EditRejected("forbidden", f"exports.{extra[0]}: only the renderer sets it")
        export_id = given_or_new_id(fields.pop("id", None), "id")
        row = {"id": export_id, "project_id": pid, **validate_new("exports", fields)}
        row, created = await create_once(self._records, "exports", row, ["project_id", *fields], "export")
        if created:
            self._on_change(pid, "exports", "insert", row)
        return row, created

    async def list_exports(self, caller: Caller, project_id: object) -> list[Row]:
        """A project's exports, oldest first."""
        pid = await self._projects.owner(caller, project_id)
        return await self._records.select("exports", {"project_id": pid})

    async def update_export(self, caller: Caller, export_id: object, body: Mapping[str, Any]) -> Row:
        """Report an export's progress: status (never backwards), progress, file_url, error."""
        caller.require_service()
        eid = check_id(export_id, "export_id")
        values = validate_set("exports", body)
        if "format" in values or "resolution" in values:
            raise EditRejected("bad_request", "exports: format and resolution are set when it is requested")
        row = await self._records.update("exports", eid, values, lambda old: export_step(old, values))
        self._on_change(str(row["project_id"]), "exports", "update", row)
        return row

    # -- audio files ------------------------------------------------------------------------------------

    async def create_audio(
        self, caller: Caller, project_id: object, body: Mapping[str, Any]
    ) -> tuple[Row, bool]:
        """Add an audio file (a voice-over, music or effect track) to a project.

        Returns:
            The row, and whether this call made it: the same id and body again return the same row.
        """
        caller.require_service()
        pid = await self._projects.owner(caller, project_id)
        fields = dict(body)
        audio_id = given_or_new_id(fields.pop("id", None), "id")
        row = {"id": audio_id, "project_id": pid, **validate_new("audio_files", fields)}
        row, created = await create_once(
            self._records, "audio_files", row, ["project_id", *fields], "audio file"
        )
        if created:
            self._on_change(pid, "audio_files", "insert", row)
        return row, created

    async def list_audio(self, caller: Caller, project_id: object) -> list[Row]:
        """A project's audio files, oldest first."""
        pid = await self._projects.owner(caller, project_id)
        return await self._records.select("audio_files", {"project_id": pid})

    async def delete_audio(self, caller: Caller, audio_id: object) -> None:
        """Remove an audio file's row (its stored file stays until removed from storage)."""
        caller.require_service()
        aid = check_id(audio_id, "audio_id")
        row = await self._own_row(caller, "audio_files", aid)
        if await self._records.delete("audio_files", aid):
            self._on_change(str(row["project_id"]), "audio_files", "delete", row)

    # -- files ------------------------------------------------------------------------------------------

    async def check_upload(
        self, caller: Caller, bucket: str, path: str, content_type: str, size: int
    ) -> None:
        """Check an upload before its bytes are read: the caller, the bucket's rules, the project."""
        caller.require_service()
        await self._projects.owner(caller, check_upload(bucket, path, content_type, size))

    async def upload(
        self,
        caller: Caller,
        bucket: str,
        path: str,
        data: bytes | Path,
        content_type: str,
        *,
        upsert: bool,
        expires_in: int | None,
    ) -> Row:
        """Store a file of a project (its bytes, or a file of them); return its URL.

        The URL is public for thumbnails, else signed.
        """
        size = (await asyncio.to_thread(data.stat)).st_size if isinstance(data, Path) else len(data)
        await self.check_upload(caller, bucket, path, content_type, size)
        await self._files.upload(bucket, path, data, content_type, upsert=upsert)
        if bucket_rule(bucket).public:
            url = await self._files.public_url(bucket, path)
        else:
            url = await self._files.signed_url(bucket, path, check_expiry(expires_in or UPLOAD_URL_SECONDS))
        return {"bucket": bucket, "path": path, "url": url, "size": size, "content_type": content_type}

    async def sign(self, caller: Caller, bucket: str, path: str, expires_in: object) -> str:
        """A signed URL of a stored file.

        Editors may ask for the files of their own projects: the URLs stored in rows (a clip's
        ``file_url``) expire, and a page must be able to show the file after that.
        """
        bucket_rule(bucket)
        if caller.service:
            project_of(path)
        else:
            await self._projects.owner(caller, project_of(path))
        return await self._files.signed_url(bucket, path, check_expiry(expires_in))

    async def public_url(self, caller: Caller, bucket: str, path: str) -> str:
        """The public URL of a file of a public bucket (refused for private ones)."""
        caller.require_service()
        project_of(path)
        return await self._files.public_url(bucket, path)

    async def remove(self, caller: Caller, bucket: str, path: str) -> bool:
        """Remove a stored file; return whether there was one."""
        caller.require_service()
        bucket_rule(bucket)
        project_of(path)
        return await self._files.remove(bucket, path)

    async def _own_row(self, caller: Caller, table: OtherTable, row_id: str) -> Row:
        row = await self._records.get(table, row_id)
        if row is None:
            raise EditRejected("not_found", f"{table} row {row_id} does not exist")
        if table == "voices":
            self._gate.check_owner(caller, row["user_id"], f"voice {row_id}")
        return row
