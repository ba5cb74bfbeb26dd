"""The Supabase Storage subset that storage3 and storage-js use, served at ``/storage/v1/``.

Object rows live in ``storage.objects`` and are written and read as the role of the request, so the
storage RLS policies of the migrations decide who may upload, download, list or remove, as on Supabase.
Bucket rules (``public``, ``file_size_limit``, ``allowed_mime_types``) come from ``storage.buckets``. File
contents go to a folder on disk, one file per object. Signed URLs (:mod:`localsupabase.signing`) are made
for callers who may read the object and then download it without a key until they expire.

Errors are shaped as Storage renders them: ``{"statusCode": "<status>", "error", "message"}`` in the body,
with HTTP 400 for every client error (500 stays 500), which is what storage3 and storage-js parse.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp import BodyPartReader, web

from localsupabase import auth, signing
from localsupabase.db import as_role
from localsupabase.faults import Faults
from localsupabase.rest import request_token

# The characters Storage accepts in object keys and bucket names.
_VALID_KEY = re.compile(r"^[\w/!\-.*'() &$@=;:+,?]+$")
_LIST_COLUMNS = frozenset({"name", "updated_at", "created_at", "last_accessed_at"})
_DEFAULT_CACHE_CONTROL = "no-cache"
_UNREADABLE = "Either the object does not exist or this key may not read it"


class StorageError(Exception):
    """An error answered as Storage renders it."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> web.Response:
        """Return the error as an HTTP response (HTTP 400 for client errors, as Storage answers)."""
        body = {"statusCode": str(self.status), "error": self.error, "message": self.message}
        http_status = self.status if self.status >= 500 else 400
        return web.json_response(body, status=http_status)


def _not_found() -> StorageError:
    return StorageError(404, "not_found", "Object not found")


def _no_bucket() -> StorageError:
    return StorageError(404, "Bucket not found", "Bucket not found")


def _check_key(bucket: str, name: str) -> None:
    for text in (bucket, name):
        parts = text.split("/")
        if not _VALID_KEY.match(text) or any(part in ("", ".", "..") for part in parts):
            raise StorageError(400, "InvalidKey", f"Invalid key: {text}")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    kind, _, subtype = mime.split(";")[0].strip().lower().partition("/")
    if not subtype:
        return False
    for rule in allowed:
        rule_kind, _, rule_subtype = rule.strip().lower().partition("/")
        if rule_kind == kind and rule_subtype in ("*", subtype):
            return True
    return False


def _db_error(exc: asyncpg.PostgresError) -> StorageError:
    sqlstate = str(exc.sqlstate)
    if sqlstate == "23505":
        return StorageError(409, "Duplicate", "The resource already exists")
    if sqlstate == "42501":
        return StorageError(403, "Unauthorized", "new row violates row-level security policy")
    if sqlstate == "23503":
        return _no_bucket()
    return StorageError(500, "DatabaseError", str(exc.message))


class StorageApi:
    """The ``/storage/v1`` routes of the stand-in.

    Args:
        pool: asyncpg pool connected as a superuser (requests switch to their own role).
        jwt_secret: the stack's JWT secret.
        faults: the stand-in's fault switches (``storage_unavailable``).
        root: folder for the objects' contents.
    """

    def __init__(self, pool: asyncpg.Pool, jwt_secret: str, faults: Faults, root: Path) -> None:
        self._pool = pool
        self._secret = jwt_secret
        self._faults = faults
        self.root = root

    def add_routes(self, app: web.Application) -> None:
        """Mount the routes on ``app`` (specific paths first: aiohttp matches in order)."""
        prefix = "/storage/v1"
        router = app.router
        router.add_route("GET", f"{prefix}/bucket", self._guard(self.list_buckets))
        router.add_route("GET", f"{prefix}/bucket/{{bucket}}", self._guard(self.get_bucket))
        router.add_route("POST", f"{prefix}/object/list/{{bucket}}", self._guard(self.list_objects))
        router.add_route("POST", f"{prefix}/object/sign/{{bucket}}", self._guard(self.sign_many))
        router.add_route("POST", f"{prefix}/object/sign/{{bucket}}/{{name:.+}}", self._guard(self.sign_one))
        router.add_route(
            "GET", f"{prefix}/object/sign/{{bucket}}/{{name:.+}}", self._guard(self.download_signed)
        )
        router.add_route("GET", f"{prefix}/object/info/{{bucket}}/{{name:.+}}", self._guard(self.info))
        router.add_route(
            "GET", f"{prefix}/object/public/{{bucket}}/{{name:.+}}", self._guard(self.download_public)
        )
        router.add_route(
            "GET", f"{prefix}/object/authenticated/{{bucket}}/{{name:.+}}", self._guard(self.download)
        )
        router.add_route("POST", f"{prefix}/object/{{bucket}}/{{name:.+}}", self._guard(self.upload))
        router.add_route("PUT", f"{prefix}/object/{{bucket}}/{{name:.+}}", self._guard(self.update))
        router.add_route("GET", f"{prefix}/object/{{bucket}}/{{name:.+}}", self._guard(self.download))
        router.add_route("DELETE", f"{prefix}/object/{{bucket}}/{{name:.+}}", self._guard(self.remove_one))
        router.add_route("DELETE", f"{prefix}/object/{{bucket}}", self._guard(self.remove))

    def _guard(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                if self._faults.storage_unavailable:
                    raise StorageError(503, "DatabaseConnectionLimit", "Storage is unavailable")
                response: web.StreamResponse = await handler(request)
                return response
            except StorageError as exc:
                return exc.response()
            except signing.SignatureError as exc:
                return StorageError(400, exc.error, exc.message).response()
            except asyncpg.PostgresError as exc:
                return _db_error(exc).response()

        return guarded

    def _claims(self, request: web.Request) -> dict[str, Any]:
        token = request_token(request)
        if token is None:
            raise StorageError(400, "Error", "headers must have required property 'authorization'")
        try:
            return auth.verify(self._secret, token)
        except auth.AuthError as exc:
            raise StorageError(400, "InvalidJWT", str(exc)) from exc

    @asynccontextmanager
    async def _as(self, claims: dict[str, Any]) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn, as_role(conn, claims):
            yield conn

    def _path(self, bucket: str, name: str) -> Path:
        _check_key(bucket, name)
        path = (self.root / bucket / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(400, "InvalidKey", f"Invalid key: {name}")
        return path

    async def _bucket(self, bucket: str) -> asyncpg.Record:
        # Storage reads bucket rules with its own privileges, not the caller's.
        row = await self._pool.fetchrow(
            "select id, public, file_size_limit, allowed_mime_types from storage.buckets where id = $1",
            bucket,
        )
        if row is None:
            raise _no_bucket()
        return row

    # --- buckets -----------------------------------------------------------------------------------

    _BUCKET_JSON = (
        "select coalesce(json_agg(json_build_object('id', b.id, 'name', b.name,"
        " 'owner', coalesce(b.owner_id, ''), 'public', coalesce(b.public, false),"
        " 'file_size_limit', b.file_size_limit,"
        " 'allowed_mime_types', b.allowed_mime_types, 'created_at', b.created_at,"
        " 'updated_at', b.updated_at) order by b.id), '[]')::text from storage.buckets b"
    )

    async def list_buckets(self, request: web.Request) -> web.StreamResponse:
        """``GET /bucket``: the buckets the role may see."""
        async with self._as(self._claims(request)) as conn:
            body = await conn.fetchval(self._BUCKET_JSON)
        return web.Response(text=body, content_type="application/json")

    async def get_bucket(self, request: web.Request) -> web.StreamResponse:
        """``GET /bucket/{id}``: one bucket."""
        async with self._as(self._claims(request)) as conn:
            body = await conn.fetchval(self._BUCKET_JSON + " where b.id = $1", request.match_info["bucket"])
        found = json.loads(body)
        if not found:
            raise _no_bucket()
        return web.json_response(found[0])

    # --- upload ------------------------------------------------------------------------------------

    async def _read_upload(self, request: web.Request) -> tuple[bytes, str, str, dict[str, Any] | None]:
        """Return (content, mime type, cache control, user metadata) of a multipart or raw upload."""
        cache_control = request.headers.get("cache-control", "")
        metadata: dict[str, Any] | None = None
        if request.content_type.startswith("multipart/"):
            content: bytes | None = None
            mime = "text/plain"
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.filename is not None and content is None:
                    content = await part.read(decode=False)
                    mime = part.headers.get("Content-Type", "text/plain")
                elif part.name == "cacheControl":
                    cache_control = (await part.text()).strip()
                elif part.name == "metadata":
                    metadata = json.loads(await part.text())
            if content is None:
                raise StorageError(400, "InvalidRequest", "No content provided")
        else:
            content = await request.read()
            mime = request.headers.get("Content-Type", "text/plain")
        if cache_control and cache_control.isdigit():
            cache_control = f"max-age={cache_control}"
        return content, mime, cache_control or _DEFAULT_CACHE_CONTROL, metadata

    async def _store(self, request: web.Request, *, update: bool) -> web.StreamResponse:
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        path = self._path(bucket, name)
        claims = self._claims(request)
        rules = await self._bucket(bucket)
        content, mime, cache_control, user_metadata = await self._read_upload(request)
        limit = rules["file_size_limit"]
        if limit is not None and len(content) > limit:
            raise StorageError(413, "Payload too large", "The object exceeded the maximum allowed size")
        if not _mime_allowed(mime, rules["allowed_mime_types"]):
            raise StorageError(415, "invalid_mime_type", f"mime type {mime} is not supported")
        now = datetime.now(UTC)
        etag = '"' + hashlib.md5(content, usedforsecurity=False).hexdigest() + '"'
        metadata = {
            "eTag": etag,
            "size": len(content),
            "mimetype": mime,
            "cacheControl": cache_control,
            "lastModified": _iso(now),
            "contentLength": len(content),
            "httpStatusCode": 200,
        }
        owner = claims.get("sub")
        version = str(uuid.uuid4())
        params = [bucket, name, owner, json.dumps(metadata), version, json.dumps(user_metadata)]
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        async with self._as(claims) as conn:
            if update:
                object_id = await conn.fetchval(
                    "update storage.objects set owner = $3::text::uuid, owner_id = $3, metadata = $4::jsonb,"
                    " version = $5, user_metadata = $6::jsonb, updated_at = now()"
                    " where bucket_id = $1 and name = $2 returning id",
                    *params,
                )
                if object_id is None:
                    raise _not_found()
            else:
                insert = (
                    "insert into storage.objects"
                    " (bucket_id, name, owner, owner_id, metadata, version, user_metadata)"
                    " values ($1, $2, $3::text::uuid, $3, $4::jsonb, $5, $6::jsonb)"
                )
                if upsert:
                    insert += (
                        " on conflict (bucket_id, name) do update set owner = excluded.owner,"
                        " owner_id = excluded.owner_id, metadata = excluded.metadata,"
                        " version = excluded.version,"
                        " user_metadata = excluded.user_metadata, updated_at = now()"
                    )
                object_id = await conn.fetchval(insert + " returning id", *params)
            # The row commits only once the file is in place, so a failed write leaves no dangling row.
            await asyncio.to_thread(_write_file, path, content)
        return web.json_response({"Id": str(object_id), "Key": f"{bucket}/{name}"})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """``POST /object/{bucket}/{name}``: a new object (``x-upsert: true`` replaces an existing one)."""
        return await self._store(request, update=False)

    async def update(self, request: web.Request) -> web.StreamResponse:
        """``PUT /object/{bucket}/{name}``: new content for an existing object."""
        return await self._store(request, update=True)

    # --- download ----------------------------------------------------------------------------------

    async def _send(
        self,
        bucket: str,
        name: str,
        metadata_json: str | None,
        updated: datetime,
        *,
        download: str | None = None,
    ) -> web.Response:
        """Answer with an object's content; ``download`` (a file name, "" for the object's) saves it."""
        path = self._path(bucket, name)
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise _not_found() from None
        metadata = json.loads(metadata_json or "{}")
        headers = {
            "Cache-Control": str(metadata.get("cacheControl", _DEFAULT_CACHE_CONTROL)),
            "ETag": str(metadata.get("eTag", "")),
            "Last-Modified": format_datetime(updated.astimezone(UTC), usegmt=True),
        }
        if download is not None:
            filename = download or name.rsplit("/", 1)[-1]
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        return web.Response(
            body=content,
            content_type=str(metadata.get("mimetype", "application/octet-stream")),
            headers=headers,
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET /object/{bucket}/{name}`` and ``/object/authenticated/…``: read as the caller's role."""
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        _check_key(bucket, name)
        async with self._as(self._claims(request)) as conn:
            row = await _stored(conn, bucket, name)
        return await self._send(bucket, name, row["metadata"], row["updated_at"])

    async def download_public(self, request: web.Request) -> web.StreamResponse:
        """``GET /object/public/{bucket}/{name}``: no key needed, only for public buckets."""
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        _check_key(bucket, name)
        rules = await self._bucket(bucket)
        if not rules["public"]:
            raise _no_bucket()
        row = await _stored(self._pool, bucket, name)
        return await self._send(bucket, name, row["metadata"], row["updated_at"])

    # --- signed URLs -------------------------------------------------------------------------------

    async def _readable(self, claims: dict[str, Any], bucket: str, names: list[str]) -> set[str]:
        """Return which of ``names`` in ``bucket`` exist and may be read by the role of ``claims``."""
        for name in names:
            _check_key(bucket, name)
        async with self._as(claims) as conn:
            rows = await conn.fetch(
                "select name from storage.objects where bucket_id = $1 and name = any($2::text[])",
                bucket,
                names,
            )
        return {row["name"] for row in rows}

    async def sign_one(self, request: web.Request) -> web.StreamResponse:
        """``POST /object/sign/{bucket}/{name}`` with ``{"expiresIn"}``: a signed URL, for a reader."""
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        claims = self._claims(request)
        expires_in = signing.parse_expires_in((await _json_object(request)).get("expiresIn"))
        if name not in await self._readable(claims, bucket, [name]):
            raise _not_found()
        return web.json_response({"signedURL": signing.sign(self._secret, bucket, name, expires_in)})

    async def sign_many(self, request: web.Request) -> web.StreamResponse:
        """``POST /object/sign/{bucket}`` with ``{"expiresIn", "paths"}``: one entry per path, in order.

        A path the caller may not read (or that does not exist) gets ``signedURL: null`` and an error.
        """
        bucket = request.match_info["bucket"]
        claims = self._claims(request)
        body = await _json_object(request)
        expires_in = signing.parse_expires_in(body.get("expiresIn"))
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise StorageError(400, "InvalidRequest", "body/paths must be a non-empty array of strings")
        readable = await self._readable(claims, bucket, paths)
        entries: list[dict[str, Any]] = []
        for path in paths:
            if path in readable:
                signed = signing.sign(self._secret, bucket, path, expires_in)
                entries.append({"error": None, "path": path, "signedURL": signed})
            else:
                entries.append({"error": _UNREADABLE, "path": path, "signedURL": None})
        return web.json_response(entries)

    async def download_signed(self, request: web.Request) -> web.StreamResponse:
        """``GET /object/sign/{bucket}/{name}?token=…``: the object, for whoever holds a valid token."""
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        _check_key(bucket, name)
        signing.verify(self._secret, request.query.get("token"), bucket, name)
        # The token is the permission, so the object is read with Storage's own privileges.
        row = await _stored(self._pool, bucket, name)
        download = request.query.get("download")
        return await self._send(bucket, name, row["metadata"], row["updated_at"], download=download)

    async def info(self, request: web.Request) -> web.StreamResponse:
        """``GET /object/info/{bucket}/{name}``: an object's description (storage3's ``info``/``exists``)."""
        bucket, name = request.match_info["bucket"], request.match_info["name"]
        _check_key(bucket, name)
        async with self._as(self._claims(request)) as conn:
            row = await conn.fetchrow(
                "select id, name, bucket_id, version, metadata::text as metadata, user_metadata::text as um,"
                " created_at, updated_at from storage.objects where bucket_id = $1 and name = $2",
                bucket,
                name,
            )
        if row is None:
            raise _not_found()
        metadata = json.loads(row["metadata"] or "{}")
        return web.json_response(
            {
                "id": str(row["id"]),
                "name": row["name"],
                "version": row["version"],
                "size": metadata.get("size"),
                "content_type": metadata.get("mimetype"),
                "cache_control": metadata.get("cacheControl"),
                "etag": metadata.get("eTag"),
                "metadata": json.loads(row["um"]) if row["um"] else {},
                "last_modified": _iso(row["updated_at"]),
                "created_at": _iso(row["created_at"]),
                "bucket_id": row["bucket_id"],
            }
        )

    # --- remove ------------------------------------------------------------------------------------

    async def _remove(self, request: web.Request, bucket: str, names: list[str]) -> list[dict[str, Any]]:
        for name in names:
            _check_key(bucket, name)
        async with self._as(self._claims(request)) as conn:
            body = await conn.fetchval(
                "with gone as (delete from storage.objects where bucket_id = $1 and name = any($2::text[])"
                " returning *) select coalesce(json_agg(gone), '[]')::text from gone",
                bucket,
                names,
            )
        removed: list[dict[str, Any]] = json.loads(body)
        for item in removed:
            await asyncio.to_thread(_unlink, self._path(bucket, item["name"]))
        return removed

    async def remove(self, request: web.Request) -> web.StreamResponse:
        """``DELETE /object/{bucket}`` with ``{"prefixes": [...]}``: the removed objects RLS let go."""
        try:
            names = (await request.json())["prefixes"]
        except (ValueError, KeyError, TypeError):
            raise StorageError(400, "InvalidRequest", "body must have required property 'prefixes'") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise StorageError(400, "InvalidRequest", "body/prefixes must be an array of strings")
        return web.json_response(await self._remove(request, request.match_info["bucket"], names))

    async def remove_one(self, request: web.Request) -> web.StreamResponse:
        """``DELETE /object/{bucket}/{name}``: one object."""
        removed = await self._remove(request, request.match_info["bucket"], [request.match_info["name"]])
        if not removed:
            raise _not_found()
        return web.json_response({"message": "Successfully deleted"})

    # --- list --------------------------------------------------------------------------------------

    async def list_objects(self, request: web.Request) -> web.StreamResponse:
        """``POST /object/list/{bucket}``: the folders and files right under ``prefix``, folders first."""
        bucket = request.match_info["bucket"]
        try:
            options = await request.json()
        except ValueError:
            options = {}
        prefix = str(options.get("prefix") or "").lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        search = str(options.get("search") or "").lower()
        limit = int(options.get("limit", 100))
        offset = int(options.get("offset", 0))
        sort_by = options.get("sortBy") or {}
        column = sort_by.get("column", "name") if sort_by.get("column") in _LIST_COLUMNS else "name"
        descending = str(sort_by.get("order", "asc")).lower() == "desc"
        claims = self._claims(request)
        await self._bucket(bucket)
        async with self._as(claims) as conn:
            rows = await conn.fetch(
                "select name, id, updated_at, created_at, last_accessed_at, metadata::text as metadata"
                " from storage.objects where bucket_id = $1 and starts_with(name, $2)",
                bucket,
                prefix,
            )
        folders: set[str] = set()
        files: list[dict[str, Any]] = []
        for row in rows:
            rest = row["name"][len(prefix) :]
            if not rest.lower().startswith(search):
                continue
            head, slash, _ = rest.partition("/")
            if slash:
                folders.add(head)
            else:
                files.append(
                    {
                        "name": rest,
                        "id": str(row["id"]),
                        "updated_at": _iso(row["updated_at"]),
                        "created_at": _iso(row["created_at"]),
                        "last_accessed_at": _iso(row["last_accessed_at"]),
                        "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
                    }
                )
        files.sort(key=lambda item: item[column] or "", reverse=descending)
        empty = dict.fromkeys(("id", "updated_at", "created_at", "last_accessed_at", "metadata"))
        entries = [{"name": f, **empty} for f in sorted(folders, reverse=descending)] + files
        return web.json_response(entries[offset : offset + limit])


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise StorageError(400, "InvalidRequest", "body must be a JSON object")
    return body


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _stored(db: asyncpg.Pool | asyncpg.Connection, bucket: str, name: str) -> asyncpg.Record:
    """An object's metadata and update time, read through ``db`` (a caller's role, or Storage's own).

    Raises:
        StorageError: Storage's ``not_found`` answer: no such object, or not visible to ``db``.
    """
    row = await db.fetchrow(
        "select metadata::text as metadata, updated_at from storage.objects"
        " where bucket_id = $1 and name = $2",
        bucket,
        name,
    )
    if row is None:
        raise _not_found()
    return row
