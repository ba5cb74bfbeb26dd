"""The studio's files: buckets, object paths and their rules, and the two file stores.

The buckets and their rules are those of ``supabase/migrations/20261126000003_storage.sql``: ``clips``,
``audio`` and ``exports`` are private, ``thumbnails`` is public; each has a size limit and a list of
allowed content types. Every object lives under its project: ``projects/{project_id}/clips/…``,
``…/audio/…``, ``…/final/…`` (exports) and ``…/thumbnails/…``.

Two stores answer the same calls. :class:`SupabaseFiles` is Supabase Storage, reached with the
service key. :class:`LocalFiles` keeps the files under the state directory (local mode) and signs its
URLs itself, with an HMAC of the service key; the daemon serves them at the same paths as Supabase
Storage (``/storage/v1/object/sign/{bucket}/{path}?token=…`` and ``/storage/v1/object/public/…``), so a
URL from either store is used the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

from syncd.errors import EditRejected

Bucket = Literal["clips", "audio", "exports", "thumbnails"]


@dataclass(frozen=True, slots=True)
class BucketRule:
    """What a bucket accepts.

    Attributes:
        public: whether its objects are readable by URL without a signature.
        size_limit: the largest object in bytes.
        mime_types: the accepted content types; ``type/*`` accepts every subtype.
        folder: the folder of the project where its objects go.
    """

    public: bool
    size_limit: int
    mime_types: tuple[str, ...]
    folder: str


BUCKETS: Final[dict[str, BucketRule]] = {
    "clips": BucketRule(False, 524_288_000, ("video/*",), "clips"),
    "audio": BucketRule(False, 104_857_600, ("audio/*",), "audio"),
    "exports": BucketRule(False, 2_147_483_648, ("video/*", "image/gif"), "final"),
    "thumbnails": BucketRule(True, 5_242_880, ("image/*",), "thumbnails"),
}
"""The studio's buckets, as the storage migration creates them."""

DEFAULT_SIGNED_SECONDS: Final = 3600
"""How long a signed URL lasts unless the caller says otherwise."""

MAX_SIGNED_SECONDS: Final = 7 * 24 * 3600
"""The longest validity a signed URL may ask for."""

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PATH = re.compile(rf"^projects/({_UUID})/([A-Za-z0-9_][A-Za-z0-9_.\-]*)(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)+$")
_EXTENSIONS: Final = {
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "image/gif": "gif",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
}


def bucket_rule(bucket: str) -> BucketRule:
    """The rule of a bucket.

    Raises:
        EditRejected: ``not_found`` for a bucket the studio does not have.
    """
    rule = BUCKETS.get(bucket)
    if rule is None:
        known = ", ".join(BUCKETS)
        raise EditRejected("not_found", f"bucket {bucket!r} does not exist (buckets: {known})")
    return rule


_SIGNED_URL = re.compile(r"/storage/v1/object/sign/([^/]+)/(.+)$")


def signed_object(url: str) -> tuple[str, str] | None:
    """The bucket and path a signed Storage URL (syncd's or Supabase's) names, or None for any other."""
    match = _SIGNED_URL.search(urlsplit(url).path)
    if match is None:
        return None
    return unquote(match[1]), "/".join(unquote(part) for part in match[2].split("/"))


def project_of(path: str) -> str:
    """The project id of an object path ``projects/{project_id}/…``.

    Raises:
        EditRejected: ``bad_request`` for any other path (``..``, empty parts, odd characters).
    """
    match = _PATH.match(path)
    if match is None:
        raise EditRejected(
            "bad_request",
            f"path {path!r}: objects live under projects/{{project_id}}/ "
            "(lower-case UUID; letters, digits, '_', '-', '.' in each part)",
        )
    return match.group(1)


def project_folder(project_id: str) -> str:
    """``projects/{project_id}``, the folder of a project's objects in each bucket.

    Raises:
        EditRejected: ``bad_request`` when ``project_id`` is not a lower-case UUID.
    """
    if not re.fullmatch(_UUID, project_id):
        raise EditRejected("bad_request", f"project {project_id!r}: not a lower-case UUID")
    return f"projects/{project_id}"


def object_path(bucket: str, project_id: str, name: str) -> str:
    """The path of a new object of a project in a bucket: ``projects/{id}/{folder}/{name}``."""
    return f"projects/{project_id.lower()}/{bucket_rule(bucket).folder}/{name}"


def file_name(content_type: str, stem: str) -> str:
    """A file name for a new object: ``stem`` plus the extension of its content type."""
    extension = _EXTENSIONS.get(content_type.partition(";")[0].strip().lower(), "bin")
    return f"{stem}.{extension}"


def check_upload(bucket: str, path: str, content_type: str, size: int) -> str:
    """Check an upload against its bucket's rules; return the path's project id.

    Raises:
        EditRejected: ``not_found`` (no such bucket), ``bad_request`` (path or content type) or
            ``too_large`` (over the bucket's size limit).
    """
    rule = bucket_rule(bucket)
    project_id = project_of(path)
    mime = content_type.partition(";")[0].strip().lower()
    if not any(_mime_matches(mime, allowed) for allowed in rule.mime_types):
        allowed = ", ".join(rule.mime_types)
        raise EditRejected(
            "bad_request", f"content type {mime or '(none)'!r} is not accepted by bucket {bucket} ({allowed})"
        )
    if size > rule.size_limit:
        raise EditRejected(
            "too_large", f"{size} bytes is over the size limit of bucket {bucket} ({rule.size_limit} bytes)"
        )
    return project_id


def check_expiry(expires_in: object) -> int:
    """Check the validity asked for a signed URL, in seconds.

    Raises:
        EditRejected: ``bad_request`` unless it is a whole number from 1 to :data:`MAX_SIGNED_SECONDS`.
    """
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise EditRejected("bad_request", "expires_in: must be a positive whole number of seconds")
    if expires_in > MAX_SIGNED_SECONDS:
        raise EditRejected("bad_request", f"expires_in: at most {MAX_SIGNED_SECONDS} seconds")
    return expires_in


def _mime_matches(mime: str, allowed: str) -> bool:
    if allowed.endswith("/*"):
        return mime.startswith(allowed[:-1]) and len(mime) > len(allowed) - 1
    return mime == allowed


class FileStore(Protocol):
    """What the HTTP API needs from a file store (both modes)."""

    async def upload(
        self, bucket: str, path: str, data: bytes | Path, content_type: str, *, upsert: bool
    ) -> None:
        """Store an object (replacing it when ``upsert``); the caller checked it with :func:`check_upload`.

        ``data`` is the bytes, or a file holding them that the store may move away.

        Raises:
            EditRejected: ``conflict`` when it exists and ``upsert`` is false.
        """

    async def remove(self, bucket: str, path: str) -> bool:
        """Remove an object; return whether there was one."""

    async def remove_project(self, project_id: str) -> int:
        """Remove every object of a project (``projects/{project_id}/…`` in every bucket); return how many."""

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        """A URL that reads the object until ``expires_in`` seconds from now.

        Raises:
            EditRejected: ``not_found`` when there is no such object.
        """

    async def public_url(self, bucket: str, path: str) -> str:
        """The URL of an object of a public bucket.

        Raises:
            EditRejected: ``forbidden`` for a private bucket.
        """


class LocalFiles:
    """The file store of local mode: files under ``root``, URLs served by the daemon.

    Args:
        root: the folder of the files (``{state_dir}/files``).
        secret: the key that signs URLs (the service key).
        base_url: the daemon's address as clients reach it, without a trailing slash.
    """

    def __init__(self, root: Path, secret: str, base_url: str) -> None:
        self.root = root
        self._secret = secret.encode()
        self.base_url = base_url

    def file(self, bucket: str, path: str) -> Path:
        """Where an object's bytes are kept (checked: inside the bucket's folder)."""
        bucket_rule(bucket)
        project_of(path)
        return self.root / bucket / path

    async def upload(
        self, bucket: str, path: str, data: bytes | Path, content_type: str, *, upsert: bool
    ) -> None:
        """Write the object and its content type; a reader never sees half a file."""
        target = self.file(bucket, path)
        await asyncio.to_thread(self._write, target, data, content_type, upsert)

    def _write(self, target: Path, data: bytes | Path, content_type: str, upsert: bool) -> None:
        if target.exists() and not upsert:
            raise EditRejected("conflict", f"{target.name} exists; upload with upsert to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        writes: list[tuple[Path, bytes]] = []
        if isinstance(data, Path):
            data.replace(target)  # a file the caller wrote and synced, on this disk
        else:
            writes.append((target, data))
        writes.append((_meta(target), json.dumps({"type": content_type}).encode()))
        for final, content in writes:
            partial = final.with_name(final.name + ".partial")
            with partial.open("wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            partial.replace(final)

    async def remove(self, bucket: str, path: str) -> bool:
        """Delete the object's file and its content type."""
        target = self.file(bucket, path)
        existed = target.exists()
        for item in (target, _meta(target)):
            item.unlink(missing_ok=True)
        return existed

    async def remove_project(self, project_id: str) -> int:
        """Delete the folder of the project in every bucket."""
        return await asyncio.to_thread(self._remove_folders, project_folder(project_id))

    def _remove_folders(self, project: str) -> int:
        removed = 0
        for bucket in BUCKETS:
            folder = self.root / bucket / project
            if folder.is_dir():
                removed += sum(1 for f in folder.rglob("*") if f.is_file() and f.suffix != ".type")
                shutil.rmtree(folder)
        return removed

    def read(self, bucket: str, path: str) -> tuple[Path, str]:
        """The file of an object and its content type.

        Raises:
            EditRejected: ``not_found`` when there is no such object.
        """
        target = self.file(bucket, path)
        if not target.is_file():
            raise EditRejected("not_found", f"object {bucket}/{path} does not exist")
        try:
            content_type = str(json.loads(_meta(target).read_text())["type"])
        except (OSError, ValueError, KeyError):
            content_type = "application/octet-stream"
        return target, content_type

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        """A URL of the daemon that serves the object until it expires."""
        self.read(bucket, path)
        expires = int(time.time()) + expires_in
        token = self.sign(bucket, path, expires)
        return f"{self.base_url}/storage/v1/object/sign/{bucket}/{quote(path)}?token={token}"

    async def public_url(self, bucket: str, path: str) -> str:
        """The daemon's URL of an object of a public bucket."""
        return self.public(bucket, path)

    def public(self, bucket: str, path: str) -> str:
        """The daemon's URL of an object of a public bucket (refused for a private one)."""
        if not bucket_rule(bucket).public:
            raise EditRejected("forbidden", f"bucket {bucket} is private: ask for a signed URL")
        project_of(path)
        return f"{self.base_url}/storage/v1/object/public/{bucket}/{quote(path)}"

    def sign(self, bucket: str, path: str, expires: int) -> str:
        """The token of a signed URL: its expiry and an HMAC of bucket, path and expiry."""
        mac = hmac.new(self._secret, f"{bucket}/{path}\n{expires}".encode(), hashlib.sha256).digest()
        return f"{expires}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def verify(self, bucket: str, path: str, token: str, now: float) -> None:
        """Check a signed URL's token at time ``now`` (seconds since the epoch).

        Raises:
            EditRejected: ``unauthorized`` for a token that is malformed, forged or for another object,
                ``forbidden`` for one that has expired.
        """
        expires_text, _, _ = token.partition(".")
        if not expires_text.isdigit():
            raise EditRejected("unauthorized", "malformed signature token")
        expires = int(expires_text)
        if not hmac.compare_digest(self.sign(bucket, path, expires), token):
            raise EditRejected("unauthorized", "the signature does not match this object")
        if expires < now:
            raise EditRejected("forbidden", "the signed URL has expired")


def _meta(target: Path) -> Path:
    return target.with_name(target.name + ".type")


_LIST_PAGE = 1000
_REMOVE_AT_ONCE = 1000
"""Storage lists at most 1000 entries a page, and removes at most 1000 objects a request."""


class SupabaseFiles:
    """Supabase Storage through supabase-py (storage3), with the service key.

    Args:
        client: the daemon's supabase-py client.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    async def upload(
        self, bucket: str, path: str, data: bytes | Path, content_type: str, *, upsert: bool
    ) -> None:
        """Upload through Storage, which checks the bucket's rules again."""
        options = {"content-type": content_type, "upsert": "true" if upsert else "false"}
        with _storage_errors():
            await self._client.storage.from_(bucket).upload(path, data, options)

    async def remove(self, bucket: str, path: str) -> bool:
        """Remove through Storage."""
        with _storage_errors():
            removed = await self._client.storage.from_(bucket).remove([path])
        return bool(removed)

    async def remove_project(self, project_id: str) -> int:
        """List the project's folder in every bucket (Storage lists one level at a time), then remove."""
        project = project_folder(project_id)
        removed = 0
        for bucket in BUCKETS:
            files = await self._files_under(bucket, project)
            for start in range(0, len(files), _REMOVE_AT_ONCE):
                with _storage_errors():
                    await self._client.storage.from_(bucket).remove(files[start : start + _REMOVE_AT_ONCE])
            removed += len(files)
        return removed

    async def _files_under(self, bucket: str, folder: str) -> list[str]:
        files: list[str] = []
        folders = [folder]
        while folders:
            here = folders.pop()
            offset = 0
            while True:
                with _storage_errors():
                    page = await self._client.storage.from_(bucket).list(
                        here, {"limit": _LIST_PAGE, "offset": offset}
                    )
                for entry in page:
                    # A folder is listed with no id; a file with its own.
                    (files if entry.get("id") else folders).append(f"{here}/{entry['name']}")
                if len(page) < _LIST_PAGE:
                    break
                offset += _LIST_PAGE
        return files

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        """Storage's signed URL (``/object/sign/…``)."""
        with _storage_errors():
            answer = await self._client.storage.from_(bucket).create_signed_url(path, expires_in)
        return str(answer["signedURL"])

    async def public_url(self, bucket: str, path: str) -> str:
        """Storage's public URL."""
        if not bucket_rule(bucket).public:
            raise EditRejected("forbidden", f"bucket {bucket} is private: ask for a signed URL")
        return str(await self._client.storage.from_(bucket).get_public_url(path)).rstrip("?")


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """Storage's refusals and a Storage out of reach as the protocol's errors."""
    from storage3.exceptions import StorageApiError

    try:
        yield
    except StorageApiError as exc:
        raise storage_refusal(exc) from None
    except httpx.HTTPError as exc:
        raise EditRejected("unavailable", f"storage cannot be reached ({type(exc).__name__})") from None


def storage_refusal(exc: Any) -> EditRejected:
    """Storage's error as one of the protocol's codes."""
    status = str(getattr(exc, "status", ""))
    message = str(getattr(exc, "message", exc))
    if status == "404" or "not found" in message.lower():
        return EditRejected("not_found", f"storage: {message}")
    if status == "409" or "exists" in message.lower():
        return EditRejected("conflict", f"storage: {message}")
    if status == "413":
        return EditRejected("too_large", f"storage: {message}")
    if status == "429" or status.startswith("5"):
        # Storage is down or overloaded: worth retrying, unlike a request it refused.
        return EditRejected("unavailable", f"storage: {message}")
    return EditRejected("bad_request", f"storage: {message}")
