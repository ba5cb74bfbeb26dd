"""The :class:`Studio` interface, with what both modes share: object paths, content types, URLs."""

from __future__ import annotations

import abc
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from syncd.errors import SyncdError
from syncd.storage import DEFAULT_SIGNED_SECONDS, file_name, object_path, signed_object

Row = dict[str, Any]

URL_SECONDS = 7 * 24 * 3600
"""How long the signed URL of an upload is valid unless the caller says otherwise (a week)."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One :meth:`Studio.upload` call's arguments."""

    bucket: str
    path: str
    data: bytes
    content_type: str
    upsert: bool
    expires_in: int


class StudioError(SyncdError):
    """A call of :mod:`syncd.studio` was refused or could not be made.

    Args:
        code: the protocol's error code (``bad_request``, ``not_found``, ``conflict``, …), or
            ``unconfigured`` when the environment names no backend.
        message: what is wrong and where; never a key.
        status: the HTTP status, when an HTTP answer carried the refusal.
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class Studio(abc.ABC):
    """The studio's persistence: files, projects, scenes, clips, voices, exports, audio files.

    Use it as an async context manager, or call :meth:`aclose` when done. Every method raises
    :class:`StudioError` for a refused call (bad input, a project that does not exist, …); a refused
    call changes nothing.
    """

    mode: str = ""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connections."""

    # -- files ------------------------------------------------------------------------------------------

    async def upload(
        self,
        bucket: str,
        path: str,
        data: bytes,
        content_type: str,
        *,
        upsert: bool = True,
        expires_in: int = URL_SECONDS,
    ) -> str:
        """Store ``data`` at ``path`` (``projects/{id}/…``) in ``bucket``; return its URL.

        The URL is public for ``thumbnails`` and signed (valid ``expires_in`` seconds) for the others.
        The bucket's content types and size limit are checked first.

        Raises:
            StudioError: ``bad_request`` when ``data`` is not bytes. Storage's client would take a
                ``str`` for the name of a local file and upload that file instead.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StudioError(
                "bad_request", f"{path}: the data must be the file's bytes, not {type(data).__name__}"
            )
        return await self._upload(Upload(bucket, path, bytes(data), content_type, upsert, expires_in))

    @abc.abstractmethod
    async def _upload(self, upload: Upload) -> str:
        """Carry out :meth:`upload` in this mode."""

    @abc.abstractmethod
    async def signed_url(self, bucket: str, path: str, expires_in: int = DEFAULT_SIGNED_SECONDS) -> str:
        """A URL that reads a stored file for ``expires_in`` seconds."""

    async def fresh_url(self, url: str, expires_in: int = DEFAULT_SIGNED_SECONDS) -> str:
        """A working URL of the file a stored signed URL names, signed anew for ``expires_in`` seconds.

        The URL an upload returns, and the rows keep (a clip's ``file_url``), stops working a week
        later; a renderer that composes an export from older clips reads them through this. Any
        other URL (a thumbnail's public one, a provider's) comes back as it is.
        """
        stored = signed_object(url)
        if stored is None:
            return url
        return await self.signed_url(*stored, expires_in)

    @abc.abstractmethod
    async def public_url(self, bucket: str, path: str) -> str:
        """The URL of a file of a public bucket; a private bucket is refused (``forbidden``)."""

    @abc.abstractmethod
    async def remove_file(self, bucket: str, path: str) -> bool:
        """Remove a stored file; return whether there was one."""

    async def upload_video_clip(
        self,
        project_id: str,
        scene_id: str | None,
        data: bytes,
        provider: str,
        *,
        content_type: str = "video/mp4",
        expires_in: int = URL_SECONDS,
    ) -> str:
        """Store a generated clip at ``projects/{id}/clips/{scene}-{provider}-{time}.mp4``.

        Returns:
            Its signed URL (``clips`` is private), valid ``expires_in`` seconds.
        """
        stem = f"{scene_id or 'clip'}-{_slug(provider)}-{_stamp()}"
        path = object_path("clips", project_id, file_name(content_type, stem))
        return await self.upload("clips", path, data, content_type, expires_in=expires_in)

    async def upload_audio(
        self,
        project_id: str,
        data: bytes,
        *,
        name: str = "audio",
        content_type: str = "audio/mpeg",
        expires_in: int = URL_SECONDS,
    ) -> str:
        """Store an audio track at ``projects/{id}/audio/…``; return its signed URL."""
        path = object_path("audio", project_id, file_name(content_type, f"{_slug(name)}-{_stamp()}"))
        return await self.upload("audio", path, data, content_type, expires_in=expires_in)

    async def upload_thumbnail(
        self, project_id: str, data: bytes, *, name: str = "thumbnail", content_type: str = "image/png"
    ) -> str:
        """Store a thumbnail at ``projects/{id}/thumbnails/…``; return its public URL."""
        path = object_path("thumbnails", project_id, file_name(content_type, f"{_slug(name)}-{_stamp()}"))
        return await self.upload("thumbnails", path, data, content_type)

    async def upload_export(
        self,
        project_id: str,
        data: bytes,
        *,
        name: str = "export",
        content_type: str = "video/mp4",
        expires_in: int = URL_SECONDS,
    ) -> str:
        """Store a rendered export at ``projects/{id}/final/…``; return its signed URL."""
        path = object_path("exports", project_id, file_name(content_type, f"{_slug(name)}-{_stamp()}"))
        return await self.upload("exports", path, data, content_type, expires_in=expires_in)

    # -- projects, scenes, clips --------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_project(self, title: str = "Untitled project", **fields: Any) -> Row:
        """Create a project; ``id`` may be given, and the same call again returns the same row."""

    @abc.abstractmethod
    async def update_project(self, project_id: str, **fields: Any) -> Row:
        """Change fields of a project (``title``, ``script``, ``status``, ``aspect_ratio``, ``settings``)."""

    @abc.abstractmethod
    async def delete_project(self, project_id: str) -> None:
        """Delete a project with its scenes, clips, exports and audio files."""

    @abc.abstractmethod
    async def load_project(self, project_id: str) -> Row:
        """``{"project", "scenes", "clips"}``, scenes by ``scene_index`` and clips by ``order_index``."""

    @abc.abstractmethod
    async def sync_scenes(self, project_id: str, scenes: Iterable[Mapping[str, Any]]) -> list[Row]:
        """Make the project's scenes exactly ``scenes`` in that order, in one transaction; return them.

        A scene with the id of one of the project's scenes updates it, one without an id is inserted,
        one not listed is deleted; ``scene_index`` becomes each scene's position.
        """

    @abc.abstractmethod
    async def add_clip(self, project_id: str, fields: Mapping[str, Any]) -> Row:
        """Add a clip after the last one unless ``order_index`` is given; return it."""

    async def save_clip_record(
        self,
        *,
        project_id: str,
        scene_id: str | None,
        provider: str,
        file_url: str | None,
        prompt: str,
        **fields: Any,
    ) -> Row:
        """The seed's ``save_clip_record``: add a clip (status ``ready`` unless given) after the last one."""
        fields.setdefault("status", "ready")
        row = {"scene_id": scene_id, "provider": provider, "file_url": file_url, "prompt": prompt, **fields}
        return await self.add_clip(project_id, row)

    @abc.abstractmethod
    async def save_clip(self, project_id: str, clip_id: str, **fields: Any) -> Row:
        """Change fields of a clip; return it."""

    @abc.abstractmethod
    async def delete_clip(self, project_id: str, clip_id: str) -> None:
        """Remove a clip."""

    @abc.abstractmethod
    async def reorder_clips(self, project_id: str, clip_ids: Iterable[str]) -> list[Row]:
        """Put the listed clips first (``order_index`` 0, 1, …); return all clips in order."""

    # -- voices, exports, audio files ---------------------------------------------------------------------

    @abc.abstractmethod
    async def list_voices(self, user_id: str | None = None) -> list[Row]:
        """The voices of a user (None: the anonymous studio's)."""

    @abc.abstractmethod
    async def create_voice(self, **fields: Any) -> Row:
        """Add a voice: ``name``, ``provider``, ``voice_ref``, ``sample_url``, ``settings``, ``user_id``."""

    @abc.abstractmethod
    async def update_voice(self, voice_id: str, **fields: Any) -> Row:
        """Change fields of a voice."""

    @abc.abstractmethod
    async def delete_voice(self, voice_id: str) -> None:
        """Delete a voice."""

    @abc.abstractmethod
    async def create_export(self, project_id: str, **fields: Any) -> Row:
        """Request an export (``format``, ``resolution``); it starts ``queued``."""

    @abc.abstractmethod
    async def update_export(self, export_id: str, **fields: Any) -> Row:
        """Report progress: ``status`` (queued → rendering → done | failed), ``progress``, ``file_url``.

        ``error`` says why an export failed. A status never goes back (``conflict``).
        """

    @abc.abstractmethod
    async def list_exports(self, project_id: str) -> list[Row]:
        """A project's exports, oldest first."""

    @abc.abstractmethod
    async def create_audio_file(self, project_id: str, **fields: Any) -> Row:
        """Add an audio file: ``kind``, ``file_url``, ``duration``, ``scene_id``, ``voice_id``."""

    @abc.abstractmethod
    async def list_audio_files(self, project_id: str) -> list[Row]:
        """A project's audio files, oldest first."""

    @abc.abstractmethod
    async def delete_audio_file(self, audio_id: str) -> None:
        """Remove an audio file row."""


def listed(value: object) -> object:
    """A list of what an iterable argument holds (a tuple, a generator); anything else as it is.

    Text, bytes and mappings are iterable but are not lists of rows or ids: they stay as they are, as do
    numbers and None, for the list's check to refuse them by name.
    """
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        return value
    return list(value)


def _slug(text: str) -> str:
    # Object paths take ASCII letters, digits, '_', '-' and '.' (storage.object_path): accents go
    # ("Zoë" -> "zoe"), and what has no ASCII form (日本語) leaves "file".
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in plain).strip("-")
    return cleaned[:60] or "file"


def _stamp() -> str:
    return f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
