"""``syncd.studio``: the studio's persistence for the renderer and tools, in either mode.

Configured from the environment the studio already uses:

- ``SUPABASE_URL`` and ``SUPABASE_SERVICE_KEY``: Supabase mode, straight to Supabase (PostgREST,
  Storage); syncd hears the writes through Realtime and passes them to the editors;
- else ``SYNCD_URL`` and ``SYNCD_SERVICE_KEY``: the daemon's HTTP API (``syncd service-key`` prints the
  key of local mode); writes go through the daemon's engine, so editors get them at once. A call is
  sent again while the daemon is unavailable, for up to ``SYNCD_RETRY_SECONDS`` (20 by default).

:class:`Studio` is the async interface; the module's plain functions (``upload_video_clip``,
``save_clip_record``, ``create_project``, …) are the same calls for synchronous code such as the seed's
renderer, run on one background event loop. docs/studio.md shows them in use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from syncd.studio.base import Studio, StudioError

__all__ = [
    "Studio",
    "StudioError",
    "connect",
    "create_audio_file",
    "create_export",
    "create_project",
    "create_voice",
    "delete_audio_file",
    "delete_clip",
    "delete_project",
    "delete_voice",
    "fresh_url",
    "list_audio_files",
    "list_exports",
    "list_voices",
    "load_project",
    "reorder_clips",
    "save_clip",
    "save_clip_record",
    "signed_url",
    "sync_scenes",
    "update_export",
    "update_project",
    "update_voice",
    "upload_audio",
    "upload_export",
    "upload_thumbnail",
    "upload_video_clip",
]

T = TypeVar("T")

MISSING_SETTINGS = (
    "syncd.studio needs either SUPABASE_URL and SUPABASE_SERVICE_KEY (Supabase mode) or SYNCD_URL and"
    " SYNCD_SERVICE_KEY (the syncd daemon's HTTP API; `syncd service-key` prints the key in local mode)"
)


def connect(environ: Mapping[str, str] | None = None) -> Studio:
    """A :class:`Studio` for the settings in ``environ`` (the process environment by default).

    Raises:
        StudioError: ``unconfigured``: neither pair of settings is complete (the message says what to
            set), ``SUPABASE_SERVICE_KEY`` is not a service key (an anon or publishable key),
            ``SUPABASE_URL`` or ``SYNCD_URL`` is not a URL, or ``SYNCD_RETRY_SECONDS`` is not a number of
            seconds.
    """
    env = os.environ if environ is None else environ
    supabase_url, supabase_key = (
        env.get("SUPABASE_URL", "").strip(),
        env.get("SUPABASE_SERVICE_KEY", "").strip(),
    )
    if supabase_url and supabase_key:
        from syncd.config import service_key_problem

        _check_url("SUPABASE_URL", supabase_url, "the project's URL, such as https://abcd.supabase.co")
        from syncd.studio.supabase import SupabaseStudio

        # An anon or publishable key would create rows, then fail on sync_scenes and save_clip_record.
        problem = service_key_problem(supabase_key)
        if problem is not None:
            raise StudioError("unconfigured", problem)

        return SupabaseStudio(supabase_url, supabase_key)
    syncd_url, syncd_key = env.get("SYNCD_URL", "").strip(), env.get("SYNCD_SERVICE_KEY", "").strip()
    if syncd_url and syncd_key:
        from syncd.studio.daemon import RETRY_SECONDS, DaemonStudio

        # Else every call would fail as "unavailable", and be sent again for SYNCD_RETRY_SECONDS.
        _check_url("SYNCD_URL", syncd_url, "the daemon's address, such as http://127.0.0.1:8765")

        retry_for = _seconds(env, "SYNCD_RETRY_SECONDS", RETRY_SECONDS)
        return DaemonStudio(syncd_url, syncd_key, retry_for=retry_for)
    raise StudioError("unconfigured", MISSING_SETTINGS)


def _check_url(name: str, url: str, what: str) -> None:
    """Refuse ``url`` unless it is an http(s) (or ws(s)) URL with a host and a valid port."""
    from syncd.config import checked_url

    try:
        checked_url(url, ("http", "https", "ws", "wss"))
    except ValueError:
        raise StudioError("unconfigured", f"{name}: {what}, not {url!r}") from None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """The number of seconds ``env[name]`` says (``default`` when unset)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise StudioError("unconfigured", f"{name}: a number of seconds from 0 to 3600, not {text!r}")
    return seconds


# -- the synchronous functions -------------------------------------------------------------------------

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_studio: Studio | None = None


def _run(method_name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Run the :class:`Studio` method ``method_name`` on the background loop and wait for its result."""
    global _loop, _studio, _thread
    with _lock:
        if _studio is None:
            studio = connect()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="syncd.studio", daemon=True)
            thread.start()
            _loop, _studio, _thread = loop, studio, thread
    assert _loop is not None
    coro: Coroutine[Any, Any, Any] = getattr(_studio, method_name)(*args, **kwargs)
    return asyncio.run_coroutine_threadsafe(coro, _loop).result()


_inherited: list[tuple[asyncio.AbstractEventLoop | None, Studio, threading.Thread | None]] = []


def _forget_in_child() -> None:
    # A forked child (a renderer's multiprocessing pool, fork being the default on Linux) has the
    # parent's loop but not the thread that runs it, so its first call would wait forever; and the
    # lock may have been held by another thread at the fork. The child starts afresh. The parent's
    # objects are kept, never closed here: their connections are the parent's too.
    global _lock, _loop, _studio, _thread
    if _studio is not None:
        _inherited.append((_loop, _studio, _thread))
    _lock, _loop, _studio, _thread = threading.Lock(), None, None, None


os.register_at_fork(after_in_child=_forget_in_child)


def reset() -> None:
    """Forget the connection of the plain functions, so the next call reads the environment again."""
    global _loop, _studio, _thread
    with _lock:
        loop, studio, thread, _loop, _studio, _thread = _loop, _studio, _thread, None, None, None
    if loop is None or studio is None or thread is None:
        return
    asyncio.run_coroutine_threadsafe(studio.aclose(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def upload_video_clip(project_id: str, scene_id: str | None, data: bytes, provider: str, **kw: Any) -> str:
    """Store a generated clip in ``clips``; return its (signed) URL. See :meth:`Studio.upload_video_clip`."""
    return str(_run("upload_video_clip", project_id, scene_id, data, provider, **kw))


def upload_audio(project_id: str, data: bytes, **kw: Any) -> str:
    """Store an audio track in ``audio``; return its signed URL."""
    return str(_run("upload_audio", project_id, data, **kw))


def upload_thumbnail(project_id: str, data: bytes, **kw: Any) -> str:
    """Store a thumbnail in ``thumbnails``; return its public URL."""
    return str(_run("upload_thumbnail", project_id, data, **kw))


def upload_export(project_id: str, data: bytes, **kw: Any) -> str:
    """Store a rendered export in ``exports`` (``final/``); return its signed URL."""
    return str(_run("upload_export", project_id, data, **kw))


def signed_url(bucket: str, path: str, expires_in: int = 3600) -> str:
    """A URL that reads a stored file for ``expires_in`` seconds."""
    return str(_run("signed_url", bucket, path, expires_in))


def fresh_url(url: str, expires_in: int = 3600) -> str:
    """A working URL of the file a stored signed URL names (a clip's ``file_url`` a week on)."""
    return str(_run("fresh_url", url, expires_in))


def save_clip_record(
    *, project_id: str, scene_id: str | None, provider: str, file_url: str | None, prompt: str, **fields: Any
) -> dict[str, Any]:
    """Add a clip after the project's last one (unless ``order_index`` is given); return it."""
    return dict(
        _run(
            "save_clip_record",
            project_id=project_id,
            scene_id=scene_id,
            provider=provider,
            file_url=file_url,
            prompt=prompt,
            **fields,
        )
    )


def save_clip(project_id: str, clip_id: str, **fields: Any) -> dict[str, Any]:
    """Change fields of a clip; return it."""
    return dict(_run("save_clip", project_id, clip_id, **fields))


def delete_clip(project_id: str, clip_id: str) -> None:
    """Remove a clip."""
    _run("delete_clip", project_id, clip_id)


def reorder_clips(project_id: str, clip_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Put the listed clips first, in that order; return the project's clips in order."""
    return list(_run("reorder_clips", project_id, clip_ids))


def create_project(title: str, **fields: Any) -> dict[str, Any]:
    """Create a project (``id`` may be given; the same call again returns the same row)."""
    return dict(_run("create_project", title, **fields))


def update_project(project_id: str, **fields: Any) -> dict[str, Any]:
    """Change fields of a project; return it."""
    return dict(_run("update_project", project_id, **fields))


def delete_project(project_id: str) -> None:
    """Delete a project with everything in it."""
    _run("delete_project", project_id)


def load_project(project_id: str) -> dict[str, Any]:
    """``{"project", "scenes", "clips"}`` with scenes and clips in order."""
    return dict(_run("load_project", project_id))


def sync_scenes(project_id: str, scenes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Make the project's scenes exactly ``scenes``, in that order, in one step; return them."""
    return list(_run("sync_scenes", project_id, scenes))


def list_voices(user_id: str | None = None) -> list[dict[str, Any]]:
    """The voices of a user (None: the anonymous studio's)."""
    return list(_run("list_voices", user_id))


def create_voice(**fields: Any) -> dict[str, Any]:
    """Add a voice (``user_id`` None: for the anonymous studio)."""
    return dict(_run("create_voice", **fields))


def update_voice(voice_id: str, **fields: Any) -> dict[str, Any]:
    """Change fields of a voice."""
    return dict(_run("update_voice", voice_id, **fields))


def delete_voice(voice_id: str) -> None:
    """Delete a voice."""
    _run("delete_voice", voice_id)


def create_export(project_id: str, **fields: Any) -> dict[str, Any]:
    """Request an export of a project; it starts ``queued``."""
    return dict(_run("create_export", project_id, **fields))


def update_export(export_id: str, **fields: Any) -> dict[str, Any]:
    """Report an export's status (never backwards), progress, file URL or error."""
    return dict(_run("update_export", export_id, **fields))


def list_exports(project_id: str) -> list[dict[str, Any]]:
    """A project's exports, oldest first."""
    return list(_run("list_exports", project_id))


def create_audio_file(project_id: str, **fields: Any) -> dict[str, Any]:
    """Add an audio file row to a project."""
    return dict(_run("create_audio_file", project_id, **fields))


def list_audio_files(project_id: str) -> list[dict[str, Any]]:
    """A project's audio files, oldest first."""
    return list(_run("list_audio_files", project_id))


def delete_audio_file(audio_id: str) -> None:
    """Remove an audio file row."""
    _run("delete_audio_file", audio_id)
