"""The live inspector: a page that shows the projects a daemon holds, and one project live.

This module knows no web framework. :meth:`Inspector.respond` takes a request's path and its
``Authorization`` header and returns a :class:`Reply` (status, content type, body) or None when the
path is not the inspector's, so any server can mount it in a few lines:

- ``GET /`` and ``GET /projects/{project_id}``: the page (``static/index.html``);
- ``GET /static/{name}``: its script and style sheet, built from ``clients/inspector`` with the
  TypeScript client and shipped in this package, so no Node is needed where syncd runs;
- ``GET /v1/inspector/projects``: the projects as JSON, each with whether it is open, its editors,
  seq, saved seq, unsaved edits and their age.

The page itself talks to the daemon as an ordinary editor (``/v1/editor``), so opening and editing a
project follows the editors' rules. The listing follows them too: a request without a token sees the
projects owned by nobody, and only while anonymous access is on; a request with ``Authorization:
Bearer <token>`` sees that user's projects. In local mode, whose daemon listens on the loopback
address by default, the listing shows every project to everyone who can reach it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from syncd.auth import TokenVerifier, may_open
from syncd.core.engine import SyncEngine
from syncd.core.ids import ProjectId
from syncd.errors import EditRejected, UpstreamError

STATIC_FILES: Mapping[str, str] = {
    "inspector.js": "text/javascript; charset=utf-8",
    "inspector.css": "text/css; charset=utf-8",
}
"""The built files the page loads from ``/static/``, with their content types."""

PROJECTS_PATH = "/v1/inspector/projects"
_PAGE = re.compile(r"^/(?:projects/[0-9a-fA-F-]{36}/?)?$")
_SECURITY_HEADERS = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"),
)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status code, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = _SECURITY_HEADERS


class Editor(Protocol):
    """What the inspector reads of an editor connection (the gateway's ``EditorConnection``)."""

    project_id: str | None
    client_id: str | None
    user_id: str | None


@runtime_checkable
class ProjectLister(Protocol):
    """A backend that can list every project (both of syncd's backends can)."""

    async def list_projects(self) -> list[dict[str, Any]]:
        """Every project row, newest first."""


class Inspector:
    """Answers the inspector's requests from the daemon's live state.

    Args:
        backend: lists the projects (a backend without ``list_projects`` lists only the open ones).
        engine: the open projects' progress (seq, saved seq, unsaved edits).
        editors: the editor connections now open.
        unsaved_age: seconds since a project's oldest unsaved edit arrived (0 when all is saved).
        verifier: checks the listing's bearer tokens, as editors' tokens are checked.
        local: local mode, whose listing shows every project.
        allow_anonymous: whether requests without a token see the projects owned by nobody.
    """

    def __init__(
        self,
        *,
        backend: object,
        engine: SyncEngine,
        editors: Callable[[], Iterable[Editor]],
        unsaved_age: Callable[[str], float],
        verifier: TokenVerifier,
        local: bool,
        allow_anonymous: bool,
    ) -> None:
        self._backend = backend
        self._engine = engine
        self._editors = editors
        self._unsaved_age = unsaved_age
        self._verifier = verifier
        self._local = local
        self._allow_anonymous = allow_anonymous

    def add_routes(self, app: web.Application) -> None:
        """Serve the inspector's paths on the daemon's aiohttp application."""
        for path in ("/", "/projects/{project_id}", "/static/{name}", PROJECTS_PATH):
            app.router.add_get(path, self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        reply = await self.respond(request.path, request.headers.get("Authorization"))
        if reply is None:
            raise web.HTTPNotFound()
        headers = {"Content-Type": reply.content_type, **dict(reply.headers)}
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    async def respond(self, path: str, authorization: str | None = None) -> Reply | None:
        """The answer to ``GET path``, or None when the path is not the inspector's."""
        path = path.partition("?")[0]
        if _PAGE.match(path):
            return _page(path)
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            if name in STATIC_FILES:
                return _static(name, STATIC_FILES[name])
            return _json(404, {"error": "not found"})
        if path == PROJECTS_PATH:
            return await self._projects(authorization)
        return None

    async def _projects(self, authorization: str | None) -> Reply:
        user_id: str | None = None
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _json(401, {"error": "unauthorized", "message": "Authorization: Bearer <token>"})
            try:
                user_id = await self._verifier.verify(token.strip())
            except EditRejected as exc:
                status = 503 if exc.code == "unavailable" else 401
                return _json(status, {"error": exc.code, "message": exc.message})
        elif not self._local and not self._allow_anonymous:
            return _json(401, {"error": "unauthorized", "message": "this daemon needs a token"})
        try:
            rows = await self._rows()
        except (UpstreamError, OSError) as exc:
            return _json(503, {"error": "unavailable", "message": f"cannot list projects: {exc}"})
        visible = [r for r in rows if self._local or self._may_see(r.get("user_id"), user_id)]
        return _json(200, {"user_id": user_id, "projects": [self._describe(r) for r in visible]})

    def _may_see(self, owner: object, user_id: str | None) -> bool:
        return may_open(
            owner if isinstance(owner, str) else None, user_id, allow_anonymous=self._allow_anonymous
        )

    async def _rows(self) -> list[dict[str, Any]]:
        """Every project row; open projects the backend did not list come from the engine's view."""
        backend = self._backend
        rows = list(await backend.list_projects()) if isinstance(backend, ProjectLister) else []
        listed = {str(r.get("id")) for r in rows}
        for project_id in self._engine.open_projects():
            if project_id not in listed:
                rows.append({"id": project_id, "title": None, "user_id": None})
        return rows

    def _describe(self, row: Mapping[str, Any]) -> dict[str, Any]:
        project_id = str(row["id"])
        editors = [
            {"client_id": e.client_id, "user_id": e.user_id}
            for e in self._editors()
            if e.project_id == project_id and e.client_id is not None
        ]
        progress = self._engine.status(ProjectId(project_id))
        described: dict[str, Any] = {
            "id": project_id,
            "title": row.get("title"),
            "user_id": row.get("user_id"),
            "updated_at": row.get("updated_at"),
            "open": progress is not None,
            "editors": editors,
            "seq": None,
            "saved_seq": None,
            "unsaved": 0,
            "unsaved_age": 0.0,
        }
        if progress is not None:
            unsaved = progress.pending + progress.in_flight_mutations
            if progress.project is not None:  # the title as edited, saved or not
                described.update(title=progress.project.get("title"))
            described.update(
                seq=progress.seq,
                saved_seq=progress.saved_seq,
                unsaved=unsaved,
                unsaved_age=round(self._unsaved_age(project_id), 3) if unsaved else 0.0,
            )
        return described


def static_file(name: str) -> bytes:
    """The shipped file ``static/{name}`` of this package."""
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _page(path: str) -> Reply:
    """The page, its links relative to where it is: behind a proxy that serves the daemon under a
    path of its own (``/syncd/``), ``/static/…`` would be the studio's, not the inspector's."""
    page = _static("index.html", "text/html; charset=utf-8")
    if page.status != 200:
        return page
    up = "../" * (path.count("/") - 1) or "./"
    body = page.body.replace(b'="static/', f'="{up}static/'.encode()).replace(
        b'href="./"', f'href="{up}"'.encode()
    )
    return Reply(200, page.content_type, body)


def _static(name: str, content_type: str) -> Reply:
    try:
        body = static_file(name)
    except FileNotFoundError:
        return _json(500, {"error": "internal", "message": f"the inspector's {name} is not installed"})
    return Reply(200, content_type, body)


def _json(status: int, data: object) -> Reply:
    return Reply(status, "application/json", json.dumps(data, ensure_ascii=False).encode())
