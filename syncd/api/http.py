"""The HTTP API's routes on the daemon's port (docs/http.md): JSON in, JSON out, protocol error codes.

Every answer is JSON. A refusal is ``{"error": code, "message": …}`` with the status of its code
(:data:`STATUS`). Writes to projects, scenes and clips take ``?save=now`` to be saved before the answer
instead of with the debounce.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from syncd.api.access import Caller, Gate
from syncd.api.assets import AssetsApi
from syncd.api.projects import ProjectsApi
from syncd.api.relay import Forwarder, ProjectCall, decode_call, encode_call, json_object
from syncd.api.spool import Spool
from syncd.errors import EditRejected, UpstreamError
from syncd.service import Written
from syncd.storage import BUCKETS, LocalFiles, bucket_rule, check_expiry
from syncd.wire import EDITOR_PATH, ErrorCode

STATUS: Final[dict[ErrorCode, int]] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
}
"""The HTTP status of each error code."""

MAX_BODY_BYTES: Final = max(rule.size_limit for rule in BUCKETS.values())
"""The largest request body: the largest file a bucket takes (the gateway's ``max_body_bytes``)."""

MAX_JSON_BYTES: Final = 4 * 1024 * 1024
"""The largest JSON body the API reads."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LiveOperation = Callable[[ProjectCall, Caller], Awaitable[web.Response]]
"""An operation on a project's live state: run by the project's owner (`syncd.api.relay`)."""

log = logging.getLogger(__name__)


def answer(status: int, body: object) -> web.Response:
    """A JSON answer."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return web.Response(status=status, body=data, content_type="application/json")


def refusal(exc: EditRejected) -> web.Response:
    """An error as the API answers it."""
    return answer(STATUS.get(exc.code, 400), {"error": exc.code, "message": exc.message})


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (an empty body is ``{}``).

    Raises:
        EditRejected: ``too_large`` or ``bad_request``.
    """
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise EditRejected("too_large", f"the body is over {MAX_JSON_BYTES} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data += chunk
        if len(data) > MAX_JSON_BYTES:
            raise EditRejected("too_large", f"the body is over {MAX_JSON_BYTES} bytes")
    if not data.strip():
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EditRejected("bad_request", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise EditRejected("bad_request", "the body is not valid JSON: nested too deep") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    return json_object(await read_json(request))


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """Let the studio's frontend call the API from its own origin; the token is a header, not a cookie."""
    if request.path.startswith(("/v1/", "/storage/v1/")) and request.path != EDITOR_PATH:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"


def _upload_options(query: Mapping[str, str]) -> tuple[bool, int | None]:
    """``?upsert=`` and ``?expires_in=`` of an upload, checked before its bytes are read.

    Raises:
        EditRejected: ``bad_request`` naming the parameter.
    """
    upsert = query.get("upsert", "true")
    if upsert not in ("true", "false"):
        raise EditRejected("bad_request", f"upsert: 'true' or 'false', not {upsert[:40]!r}")
    expires = query.get("expires_in")
    if expires is None:
        return upsert == "true", None
    if not expires.isascii() or not expires.isdigit():
        raise EditRejected("bad_request", "expires_in: must be a positive whole number of seconds")
    # More digits than any allowed value has: too many, whatever they say (and int() has a limit).
    return upsert == "true", check_expiry(int(expires) if len(expires) <= 10 else 10**10)


def _written(written: Written, **extra: Any) -> dict[str, Any]:
    return {**extra, "seq": written.seq, "saved": written.saved}


class HttpApi:
    """The routes, bound to the operations.

    Args:
        gate: tells callers apart.
        projects: projects, scenes and clips.
        assets: voices, exports, audio files and files.
        local_files: the file store whose URLs this daemon serves (local mode), if any.
        spool: where uploads are written while they arrive (in local mode, on the files' disk).
        stopping: whether the daemon is stopping; it then takes no more writes (503), as it takes no
            more edits from editors.
        forwarder: in cluster mode, where the calls on projects another instance owns go.
    """

    def __init__(
        self,
        gate: Gate,
        projects: ProjectsApi,
        assets: AssetsApi,
        local_files: LocalFiles | None,
        spool: Spool,
        stopping: Callable[[], bool] = lambda: False,
        forwarder: Forwarder | None = None,
    ) -> None:
        self._forwarder = forwarder
        self._live: dict[str, LiveOperation] = {
            op.__name__: op
            for op in (
                self.load_project,
                self.update_project,
                self.sync_scenes,
                self.add_clip,
                self.reorder_clips,
                self.update_clip,
                self.delete_clip,
            )
        }
        self._spool = spool
        self._stopping = stopping
        self._gate = gate
        self._projects = projects
        self._assets = assets
        self._local = local_files

    def add_routes(self, app: web.Application) -> None:
        """Mount the API on the gateway's application."""
        h, live = self._h, self._h_live
        routes = [
            ("POST", "/v1/projects", h(self.create_project)),
            ("GET", "/v1/projects", h(self.list_projects)),
            ("GET", "/v1/projects/{pid}", live(self.load_project)),
            ("PATCH", "/v1/projects/{pid}", live(self.update_project)),
            ("DELETE", "/v1/projects/{pid}", h(self.delete_project)),
            ("PUT", "/v1/projects/{pid}/scenes", live(self.sync_scenes)),
            ("POST", "/v1/projects/{pid}/clips", live(self.add_clip)),
            ("PUT", "/v1/projects/{pid}/clips/order", live(self.reorder_clips)),
            ("PATCH", "/v1/projects/{pid}/clips/{cid}", live(self.update_clip)),
            ("DELETE", "/v1/projects/{pid}/clips/{cid}", live(self.delete_clip)),
            ("POST", "/v1/projects/{pid}/exports", h(self.create_export)),
            ("GET", "/v1/projects/{pid}/exports", h(self.list_exports)),
            ("PATCH", "/v1/exports/{eid}", h(self.update_export)),
            ("POST", "/v1/projects/{pid}/audio", h(self.create_audio)),
            ("GET", "/v1/projects/{pid}/audio", h(self.list_audio)),
            ("DELETE", "/v1/audio/{aid}", h(self.delete_audio)),
            ("GET", "/v1/voices", h(self.list_voices)),
            ("POST", "/v1/voices", h(self.create_voice)),
            ("PATCH", "/v1/voices/{vid}", h(self.update_voice)),
            ("DELETE", "/v1/voices/{vid}", h(self.delete_voice)),
            ("PUT", "/v1/storage/{bucket}/{path:.+}", h(self.upload)),
            ("DELETE", "/v1/storage/{bucket}/{path:.+}", h(self.remove)),
            ("POST", "/v1/storage/sign/{bucket}/{path:.+}", h(self.sign)),
            ("GET", "/v1/storage/public/{bucket}/{path:.+}", h(self.public_url)),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        for path in sorted({path for _, path, _ in routes}):
            app.router.add_route("OPTIONS", path, self.preflight)
        app.on_response_prepare.append(_cors)
        if self._local is not None:
            app.router.add_get("/storage/v1/object/sign/{bucket}/{path:.+}", self._plain(self.serve_signed))
            app.router.add_get("/storage/v1/object/public/{bucket}/{path:.+}", self._plain(self.serve_public))

    def _h(self, operation: Callable[[web.Request, Caller], Awaitable[web.Response]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                caller = await self._gate.caller(request.headers.get("Authorization"))
                if request.method != "GET" and self._stopping():
                    raise EditRejected("unavailable", "the daemon is stopping; try again in a moment")
                return await operation(request, caller)
            except EditRejected as exc:
                return refusal(exc)
            except (UpstreamError, OSError) as exc:
                log.warning("%s %s: the database failed: %s", request.method, request.path, exc)
                return refusal(EditRejected("unavailable", "the database cannot be reached; try again"))

        return handle

    def _h_live(self, operation: LiveOperation) -> Handler:
        """A route on a project's live state: served here, or by the project's owner in cluster mode."""
        assert self._live[operation.__name__] == operation, "an operation the owner could not run"

        async def run(request: web.Request, caller: Caller) -> web.Response:
            body = {} if request.method in ("GET", "DELETE") else await read_json(request)
            call = ProjectCall(operation.__name__, dict(request.match_info), dict(request.query), body)
            if self._forwarder is not None:
                pid = await self._projects.owner(caller, call.params["pid"])
                relayed = await self._forwarder.forward(pid, encode_call(call, caller))
                if relayed is not None:
                    status, data = relayed
                    return web.Response(status=status, body=data, content_type="application/json")
            return await operation(call, caller)

        return self._h(run)

    async def run_relayed(self, data: bytes) -> tuple[int, bytes] | None:
        """Run a call another instance received for a project this one owns: its status and body.

        Returns:
            None when the call was not run: a write while this daemon stops (the project's next owner
            takes it once this one lets the project go).
        """
        try:
            call, caller = decode_call(data)
            if call.route != "load_project" and self._stopping():
                return None
            operation = self._live.get(call.route)
            if operation is None:
                raise EditRejected(
                    "bad_request", f"a relayed call names no operation of this daemon: {call.route}"
                )
            response = await operation(call, caller)
        except EditRejected as exc:
            response = refusal(exc)
        except (UpstreamError, OSError) as exc:
            log.warning("a relayed call: the database failed: %s", exc)
            response = refusal(EditRejected("unavailable", "the database cannot be reached; try again"))
        assert isinstance(response.body, bytes)
        return response.status, response.body

    @staticmethod
    def _plain(operation: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await operation(request)
            except EditRejected as exc:
                return refusal(exc)

        return handle

    async def preflight(self, request: web.Request) -> web.Response:
        """A browser's CORS preflight: any origin may call, with a bearer token (no cookies are used)."""
        return web.Response(status=204)

    # -- projects, scenes, clips ------------------------------------------------------------------------

    async def create_project(self, request: web.Request, caller: Caller) -> web.Response:
        row, created = await self._projects.create(caller, await read_object(request))
        return answer(201 if created else 200, row)

    async def list_projects(self, request: web.Request, caller: Caller) -> web.Response:
        user = request.query.get("user_id") or None
        rows = await self._projects.list_for(caller, user, all_users="user_id" not in request.query)
        return answer(200, rows)

    async def load_project(self, call: ProjectCall, caller: Caller) -> web.Response:
        view = await self._projects.load(caller, call.params["pid"])
        pid = view["project"]["id"]
        view["exports"] = await self._assets.list_exports(caller, pid)
        view["audio_files"] = await self._assets.list_audio(caller, pid)
        return answer(200, view)

    async def update_project(self, call: ProjectCall, caller: Caller) -> web.Response:
        written = await self._projects.update(caller, call.params["pid"], call.object_body(), call.save())
        return answer(200, _written(written, project=dict(written.view.project)))

    async def delete_project(self, request: web.Request, caller: Caller) -> web.Response:
        project_id = await self._projects.delete(caller, request.match_info["pid"])
        await self._assets.remove_files_of(project_id)
        return answer(200, {"deleted": True})

    async def sync_scenes(self, call: ProjectCall, caller: Caller) -> web.Response:
        body = call.body
        scenes = body.get("scenes") if isinstance(body, dict) else body
        written = await self._projects.sync_scenes(caller, call.params["pid"], scenes, call.save())
        return answer(200, _written(written, scenes=[dict(r) for r in written.view.scenes]))

    async def add_clip(self, call: ProjectCall, caller: Caller) -> web.Response:
        clip, created = await self._projects.add_clip(
            caller, call.params["pid"], call.object_body(), call.save()
        )
        return answer(201 if created else 200, clip)

    async def update_clip(self, call: ProjectCall, caller: Caller) -> web.Response:
        pid, cid = call.params["pid"], call.params["cid"]
        clip = await self._projects.update_clip(caller, pid, cid, call.object_body(), call.save())
        return answer(200, clip)

    async def delete_clip(self, call: ProjectCall, caller: Caller) -> web.Response:
        pid, cid = call.params["pid"], call.params["cid"]
        written = await self._projects.delete_clip(caller, pid, cid, call.save())
        return answer(200, _written(written, deleted=True))

    async def reorder_clips(self, call: ProjectCall, caller: Caller) -> web.Response:
        body = call.body
        ids = body.get("clip_ids") if isinstance(body, dict) else body
        written = await self._projects.reorder_clips(caller, call.params["pid"], ids, call.save())
        return answer(200, _written(written, clips=[dict(r) for r in written.view.clips]))

    # -- exports, audio, voices -------------------------------------------------------------------------

    async def create_export(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_object(request)
        row, created = await self._assets.create_export(caller, request.match_info["pid"], body)
        return answer(201 if created else 200, row)

    async def list_exports(self, request: web.Request, caller: Caller) -> web.Response:
        return answer(200, await self._assets.list_exports(caller, request.match_info["pid"]))

    async def update_export(self, request: web.Request, caller: Caller) -> web.Response:
        row = await self._assets.update_export(caller, request.match_info["eid"], await read_object(request))
        return answer(200, row)

    async def create_audio(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_object(request)
        row, created = await self._assets.create_audio(caller, request.match_info["pid"], body)
        return answer(201 if created else 200, row)

    async def list_audio(self, request: web.Request, caller: Caller) -> web.Response:
        return answer(200, await self._assets.list_audio(caller, request.match_info["pid"]))

    async def delete_audio(self, request: web.Request, caller: Caller) -> web.Response:
        await self._assets.delete_audio(caller, request.match_info["aid"])
        return answer(200, {"deleted": True})

    async def list_voices(self, request: web.Request, caller: Caller) -> web.Response:
        user = request.query.get("user_id") or None
        return answer(
            200, await self._assets.list_voices(caller, user, all_users="user_id" not in request.query)
        )

    async def create_voice(self, request: web.Request, caller: Caller) -> web.Response:
        row, created = await self._assets.create_voice(caller, await read_object(request))
        return answer(201 if created else 200, row)

    async def update_voice(self, request: web.Request, caller: Caller) -> web.Response:
        vid = request.match_info["vid"]
        return answer(200, await self._assets.update_voice(caller, vid, await read_object(request)))

    async def delete_voice(self, request: web.Request, caller: Caller) -> web.Response:
        await self._assets.delete_voice(caller, request.match_info["vid"])
        return answer(200, {"deleted": True})

    # -- files ------------------------------------------------------------------------------------------

    async def upload(self, request: web.Request, caller: Caller) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        caller.require_service()
        content_type = request.headers.get("Content-Type", "")
        upsert, expires_in = _upload_options(request.query)
        await self._assets.check_upload(caller, bucket, path, content_type, request.content_length or 0)
        spool = await self._spool.take(request, bucket_rule(bucket).size_limit, bucket)
        try:
            row = await self._assets.upload(
                caller, bucket, path, spool, content_type, upsert=upsert, expires_in=expires_in
            )
        finally:
            spool.unlink(missing_ok=True)
        return answer(201, row)

    async def remove(self, request: web.Request, caller: Caller) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        return answer(200, {"deleted": await self._assets.remove(caller, bucket, path)})

    async def sign(self, request: web.Request, caller: Caller) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        body = await read_object(request)
        url = await self._assets.sign(caller, bucket, path, body.get("expires_in", 3600))
        return answer(200, {"signed_url": url})

    async def public_url(self, request: web.Request, caller: Caller) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        return answer(200, {"public_url": await self._assets.public_url(caller, bucket, path)})

    async def serve_signed(self, request: web.Request) -> web.StreamResponse:
        assert self._local is not None
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        self._local.verify(bucket, path, request.query.get("token", ""), time.time())
        return self._file(bucket, path)

    async def serve_public(self, request: web.Request) -> web.StreamResponse:
        assert self._local is not None
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        self._local.public(bucket, path)  # refuses a private bucket
        return self._file(bucket, path)

    def _file(self, bucket: str, path: str) -> web.StreamResponse:
        assert self._local is not None
        target, content_type = self._local.read(bucket, path)
        return web.FileResponse(target, headers={"Content-Type": content_type})
