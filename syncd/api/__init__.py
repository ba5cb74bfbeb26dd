"""The daemon's HTTP API (docs/http.md): projects, scenes, clips, voices, exports, audio files, files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.api.access import Gate
from syncd.api.assets import AssetsApi
from syncd.api.http import MAX_BODY_BYTES, HttpApi
from syncd.api.projects import ProjectsApi
from syncd.api.relay import Forwarder
from syncd.api.spool import Spool
from syncd.auth import TokenVerifier
from syncd.backend import Backend
from syncd.config import SyncdSettings
from syncd.host import ProjectHost
from syncd.records import LocalRecords, Records, SupabaseRecords
from syncd.servicekey import service_key
from syncd.storage import FileStore, LocalFiles, SupabaseFiles

__all__ = ["MAX_BODY_BYTES", "HttpApi", "build_api"]


def build_api(
    settings: SyncdSettings,
    host: ProjectHost,
    backend: Backend,
    verifier: TokenVerifier,
    stopping: Callable[[], bool],
    forwarder: Forwarder | None = None,
) -> tuple[HttpApi, LocalFiles | None]:
    """Make the API for the backend in use (entered); in local mode also the file store it serves.

    In cluster mode ``forwarder`` sends the calls on projects another instance owns to their owner.

    The host learns where side rows are read (and, in Supabase mode, hears their changes).

    Raises:
        ConfigError: the local service key cannot be made or read.
    """
    client: Any = getattr(backend, "client", None) if backend.name == "supabase" else None
    records: Records
    files: FileStore
    local: LocalFiles | None = None
    if client is not None:
        key = settings.supabase.service_key
        assert key is not None
        secret = key.get_secret_value()
        records, files = SupabaseRecords(client), SupabaseFiles(client)
        backend.on_side = host.side_changed  # type: ignore[attr-defined]
    else:
        secret = service_key(settings.daemon.state_dir)
        records = LocalRecords(backend)
        files = local = LocalFiles(settings.daemon.state_dir / "files", secret, "")
    host.records = records
    gate = Gate(secret, verifier, allow_anonymous=settings.allow_anonymous)
    projects = ProjectsApi(host, backend, records, gate)
    assets = AssetsApi(
        projects,
        records,
        files,
        gate,
        host.side_changed,
        reread_open=None if client else host.calls.reread_open,
    )
    incoming = (local.root if local is not None else settings.daemon.state_dir) / ".incoming"
    spool = Spool(incoming, settings.daemon.upload_reserve)
    return HttpApi(gate, projects, assets, local, spool, stopping, forwarder), local
