"""``Studio`` over the daemon's HTTP API (docs/http.md), with the service key."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from syncd.api.projects import clip_order
from syncd.errors import EditRejected, SyncdError
from syncd.rows import check_json
from syncd.storage import DEFAULT_SIGNED_SECONDS, check_expiry
from syncd.studio.base import Row, Studio, StudioError, Upload, listed
from syncd.wire import served_under

_GATEWAY_ERRORS = frozenset({502, 503, 504})
"""Statuses a proxy answers while the daemon behind it is away or restarting."""

RETRY_SECONDS = 20.0
"""How long a call is sent again while the daemon is unavailable: a restart under systemd (stop,
2 s of ``RestartSec``, start) takes less."""

log = logging.getLogger("syncd.studio")


def retry_delays(budget: float) -> Iterator[float]:
    """The waits before each new try of a call: 0.25 s, doubling to 4 s, until they add up to ``budget``."""
    delay, waited = 0.25, 0.0
    while waited < budget:
        wait = min(delay, budget - waited)
        yield wait
        waited += wait
        delay = min(delay * 2, 4.0)


class _NotSent(SyncdError):
    """A request that never reached the daemon (no connection): sending it again is always safe."""

    def __init__(self, error: StudioError) -> None:
        super().__init__(error.message)
        self.error = error


class DaemonStudio(Studio):
    """The studio through a syncd daemon (either mode of the daemon).

    Args:
        url: the daemon's address, ``http://HOST:PORT``, with the path a proxy serves it under if any
            (``https://studio.example.com/syncd``); its API's address as ``syncd run`` prints it
            (``…/v1``) is read as the same.
        service_key: what ``syncd service-key`` prints (local mode), or the ``service_role`` key.
        timeout: seconds one request may take.
        save: ``now`` to have every write saved before it returns; ``debounce`` to leave it to the
            daemon's debounce (editors get the change at once either way).
        retry_for: seconds a call is sent again while the daemon is unavailable (restarting, or its
            database away); 0 sends each call once.
    """

    mode = "daemon"

    def __init__(
        self,
        url: str,
        service_key: str,
        *,
        timeout: float = 30.0,
        save: str = "debounce",
        retry_for: float = RETRY_SECONDS,
    ) -> None:
        # Every path below starts with /v1; httpx puts it after the base's own path.
        parts = urlsplit(url)
        base = urlunsplit(parts._replace(path=served_under(parts.path)))
        self._http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {service_key}"}, timeout=timeout
        )
        self._save = {"save": save}
        self._retry_for = retry_for

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, repeatable: bool = True, **kwargs: Any) -> Any:
        """Send a request; while the answer is ``unavailable``, send it again (see :func:`retry_delays`).

        Every call of this class can be repeated without a second effect (creates name their id, the
        others set what they set), so a request that may have been applied is sent again too; one
        that is not ``repeatable`` only when it never reached the daemon. A ``DELETE`` whose repeat
        finds nothing was done by the first try.
        """
        delays = retry_delays(self._retry_for)
        reached = False  # whether an earlier try may have been applied
        while True:
            try:
                return await self._once(method, path, **kwargs)
            except _NotSent as exc:
                error = exc.error
            except StudioError as exc:
                if exc.code == "not_found" and method == "DELETE" and reached:
                    return {"deleted": True}
                if not repeatable:
                    raise
                error, reached = exc, True
            delay = next(delays, None) if error.code == "unavailable" else None
            if delay is None:
                raise error
            log.warning("%s %s: %s; trying again in %.2f s", method, path, error.message, delay)
            await asyncio.sleep(delay)

    async def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            error = StudioError("unavailable", f"cannot reach syncd at {self._http.base_url}: {exc}")
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                raise _NotSent(error) from None
            raise error from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        status = answer.status_code
        if isinstance(body, dict) and isinstance(body.get("error"), str) and status >= 400:
            raise StudioError(body["error"], str(body.get("message")), status)
        if body is None or status >= 400:
            # Not syncd's answer: a proxy in front of it (502, 504: try again later), or another server.
            code = "unavailable" if status in _GATEWAY_ERRORS else "internal"
            raise StudioError(code, f"{self._http.base_url} answered {status} without syncd's JSON", status)
        return body

    # -- files ------------------------------------------------------------------------------------------

    async def _upload(self, upload: Upload) -> str:
        """Upload through ``PUT /v1/storage/{bucket}/{path}``."""
        bucket, path, data, content_type = upload.bucket, upload.path, upload.data, upload.content_type
        upsert, expires_in = upload.upsert, upload.expires_in
        params = {"upsert": "true" if upsert else "false", "expires_in": str(expires_in)}
        headers = {"Content-Type": content_type}
        # Without upsert, a repeat of a stored upload would be refused as existing.
        body = await self._call(
            "PUT",
            f"/v1/storage/{bucket}/{quote(path)}",
            repeatable=upsert,
            content=data,
            headers=headers,
            params=params,
        )
        return str(body["url"])

    async def signed_url(self, bucket: str, path: str, expires_in: int = DEFAULT_SIGNED_SECONDS) -> str:
        """``POST /v1/storage/sign/{bucket}/{path}``."""
        body = await self._call(
            "POST",
            f"/v1/storage/sign/{bucket}/{quote(path)}",
            json={"expires_in": _checked(check_expiry, expires_in)},
        )
        return str(body["signed_url"])

    async def public_url(self, bucket: str, path: str) -> str:
        """``GET /v1/storage/public/{bucket}/{path}``."""
        return str((await self._call("GET", f"/v1/storage/public/{bucket}/{quote(path)}"))["public_url"])

    async def remove_file(self, bucket: str, path: str) -> bool:
        """``DELETE /v1/storage/{bucket}/{path}``."""
        return bool((await self._call("DELETE", f"/v1/storage/{bucket}/{quote(path)}"))["deleted"])

    # -- projects, scenes, clips --------------------------------------------------------------------------

    async def create_project(self, title: str = "Untitled project", **fields: Any) -> Row:
        """``POST /v1/projects``."""
        body = _body(_named({"title": title, **fields}), "projects")
        return dict(await self._call("POST", "/v1/projects", json=body))

    async def update_project(self, project_id: str, **fields: Any) -> Row:
        """``PATCH /v1/projects/{id}``."""
        body = await self._call(
            "PATCH", f"/v1/projects/{_id(project_id)}", json=_body(fields, "set"), params=self._save
        )
        return dict(body["project"])

    async def delete_project(self, project_id: str) -> None:
        """``DELETE /v1/projects/{id}``."""
        await self._call("DELETE", f"/v1/projects/{_id(project_id)}")

    async def load_project(self, project_id: str) -> Row:
        """``GET /v1/projects/{id}`` (the live view: unsaved edits included)."""
        body = await self._call("GET", f"/v1/projects/{_id(project_id)}")
        return {"project": body["project"], "scenes": body["scenes"], "clips": body["clips"]}

    async def sync_scenes(self, project_id: str, scenes: Iterable[Mapping[str, Any]]) -> list[Row]:
        """``PUT /v1/projects/{id}/scenes``."""
        rows = listed(scenes)
        if isinstance(rows, list):
            rows = [
                _body(_named(s), f"scenes[{n}]") if isinstance(s, Mapping) else s for n, s in enumerate(rows)
            ]
        payload = {"scenes": rows}
        body = await self._call(
            "PUT", f"/v1/projects/{_id(project_id)}/scenes", json=payload, params=self._save
        )
        return list(body["scenes"])

    async def add_clip(self, project_id: str, fields: Mapping[str, Any]) -> Row:
        """``POST /v1/projects/{id}/clips``."""
        return dict(
            await self._call(
                "POST",
                f"/v1/projects/{_id(project_id)}/clips",
                json=_body(_named(fields), "row"),
                params=self._save,
            )
        )

    async def save_clip(self, project_id: str, clip_id: str, **fields: Any) -> Row:
        """``PATCH /v1/projects/{id}/clips/{clip_id}``."""
        path = f"/v1/projects/{_id(project_id)}/clips/{_id(clip_id)}"
        return dict(await self._call("PATCH", path, json=_body(fields, "set"), params=self._save))

    async def delete_clip(self, project_id: str, clip_id: str) -> None:
        """``DELETE /v1/projects/{id}/clips/{clip_id}``."""
        await self._call("DELETE", f"/v1/projects/{_id(project_id)}/clips/{_id(clip_id)}", params=self._save)

    async def reorder_clips(self, project_id: str, clip_ids: Iterable[str]) -> list[Row]:
        """``PUT /v1/projects/{id}/clips/order``."""
        payload = {"clip_ids": _checked(clip_order, listed(clip_ids))}
        body = await self._call(
            "PUT", f"/v1/projects/{_id(project_id)}/clips/order", json=payload, params=self._save
        )
        return list(body["clips"])

    # -- voices, exports, audio files ---------------------------------------------------------------------

    async def list_voices(self, user_id: str | None = None) -> list[Row]:
        """``GET /v1/voices?user_id=``."""
        return list(await self._call("GET", "/v1/voices", params={"user_id": user_id or ""}))

    async def create_voice(self, **fields: Any) -> Row:
        """``POST /v1/voices``."""
        return dict(await self._call("POST", "/v1/voices", json=_body(_named(fields), "voices")))

    async def update_voice(self, voice_id: str, **fields: Any) -> Row:
        """``PATCH /v1/voices/{id}``."""
        return dict(await self._call("PATCH", f"/v1/voices/{_id(voice_id)}", json=_body(fields, "voices")))

    async def delete_voice(self, voice_id: str) -> None:
        """``DELETE /v1/voices/{id}``."""
        await self._call("DELETE", f"/v1/voices/{_id(voice_id)}")

    async def create_export(self, project_id: str, **fields: Any) -> Row:
        """``POST /v1/projects/{id}/exports``."""
        return dict(
            await self._call(
                "POST", f"/v1/projects/{_id(project_id)}/exports", json=_body(_named(fields), "exports")
            )
        )

    async def update_export(self, export_id: str, **fields: Any) -> Row:
        """``PATCH /v1/exports/{id}``."""
        return dict(await self._call("PATCH", f"/v1/exports/{_id(export_id)}", json=_body(fields, "exports")))

    async def list_exports(self, project_id: str) -> list[Row]:
        """``GET /v1/projects/{id}/exports``."""
        return list(await self._call("GET", f"/v1/projects/{_id(project_id)}/exports"))

    async def create_audio_file(self, project_id: str, **fields: Any) -> Row:
        """``POST /v1/projects/{id}/audio``."""
        return dict(
            await self._call(
                "POST", f"/v1/projects/{_id(project_id)}/audio", json=_body(_named(fields), "audio_files")
            )
        )

    async def list_audio_files(self, project_id: str) -> list[Row]:
        """``GET /v1/projects/{id}/audio``."""
        return list(await self._call("GET", f"/v1/projects/{_id(project_id)}/audio"))

    async def delete_audio_file(self, audio_id: str) -> None:
        """``DELETE /v1/audio/{id}``."""
        await self._call("DELETE", f"/v1/audio/{_id(audio_id)}")


def _named(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with an ``id`` (a new UUID unless given), so the create can be sent again safely."""
    named = dict(fields)
    if named.get("id") is None:
        named["id"] = str(uuid.uuid4())
    return named


def _body(fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``fields`` as a JSON body, once every value is one JSON carries unchanged.

    The daemon would refuse ``NaN`` or a NUL by the same words, but JSON cannot even carry ``NaN``, a
    ``Decimal`` or a ``datetime``: the encoder's bare error would say neither what nor where.

    Raises:
        StudioError: ``bad_request``, naming the value as the daemon would (``exports.progress``).
    """
    body = dict(fields)
    _checked(lambda value: check_json(value, where), body)
    return body


_A = TypeVar("_A")
_R = TypeVar("_R")


def _checked(check: Callable[[_A], _R], value: _A) -> _R:
    """``check(value)``, its refusal as :class:`StudioError` (the daemon checks the same again)."""
    try:
        return check(value)
    except EditRejected as exc:
        raise StudioError(exc.code, exc.message) from None


def _id(value: str) -> str:
    """An id for a URL path: quoted, so a malformed one reaches the daemon as it is and is refused there."""
    return quote(str(value), safe="")
