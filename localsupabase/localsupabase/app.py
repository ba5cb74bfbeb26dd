"""The local Supabase stand-in: REST, Storage and Realtime on one port, in front of a real PostgreSQL.

supabase-py and supabase-js take one base URL and derive ``/rest/v1``, ``/storage/v1`` and
``/realtime/v1`` from it, so everything is one aiohttp application on one loopback port.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import asyncpg
from aiohttp import web

from localsupabase import auth
from localsupabase.faults import Faults
from localsupabase.realtime import RealtimeServer
from localsupabase.rest import RestApi
from localsupabase.storage import StorageApi


class LocalSupabase:
    """A running stand-in for a Supabase project over the database at ``dsn``.

    Use it as an async context manager (or call :meth:`start` and :meth:`stop`). The keys are JWTs signed
    with ``jwt_secret`` and carry the ``role`` claim, as Supabase's are.

    Args:
        dsn: libpq URL of the project's database, as a superuser (requests switch to their own role).
        jwt_secret: secret that signs keys and user tokens; a random one by default.
        host: address to listen on.
        port: port to listen on; 0 picks a free one.
        storage_dir: folder for Storage objects; a temporary folder (removed on stop) by default.
    """

    def __init__(
        self,
        dsn: str,
        *,
        jwt_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_dir: Path | None = None,
    ) -> None:
        self.dsn = dsn
        self.jwt_secret = jwt_secret or secrets.token_urlsafe(32)
        self.anon_key = auth.make_key(self.jwt_secret, "anon")
        self.service_key = auth.make_key(self.jwt_secret, "service_role")
        self.signing_key = auth.SigningKey()
        self.faults = Faults()
        self.host = host
        self.port = port
        self._storage_dir = storage_dir
        self._own_storage_dir = storage_dir is None
        self._pool: asyncpg.Pool | None = None
        self._runner: web.AppRunner | None = None
        self._realtime: RealtimeServer | None = None

    @property
    def url(self) -> str:
        """The project URL to give to the clients (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def storage_dir(self) -> Path:
        """The folder that holds the Storage objects (only valid while running)."""
        if self._storage_dir is None:
            raise RuntimeError("the stand-in is not running")
        return self._storage_dir

    @property
    def realtime(self) -> RealtimeServer:
        """The Realtime server, whose methods trigger the one-off Realtime faults."""
        if self._realtime is None:
            raise RuntimeError("the stand-in is not running")
        return self._realtime

    @property
    def pool(self) -> asyncpg.Pool:
        """The stand-in's superuser connection pool (only valid while running)."""
        if self._pool is None:
            raise RuntimeError("the stand-in is not running")
        return self._pool

    def user_token(
        self, user_id: str, *, email: str | None = None, lifetime: float = 3600, algorithm: str = "HS256"
    ) -> str:
        """Return an access token for user ``user_id``, as Supabase Auth would issue it: ``HS256``
        (signed with the JWT secret) or ``ES256`` (signed with the signing key, which the JWKS lists)."""
        if algorithm not in ("HS256", "ES256"):
            raise ValueError(f"algorithm must be HS256 or ES256, not {algorithm!r}")
        key = self.signing_key if algorithm == "ES256" else None
        return auth.make_user_token(self.jwt_secret, user_id, lifetime=lifetime, email=email, signing_key=key)

    async def _jwks(self, request: web.Request) -> web.Response:
        """``GET /auth/v1/.well-known/jwks.json``: the public signing key (public: no key needed)."""
        if self.faults.auth_unavailable:
            return web.json_response({"message": "Service Unavailable"}, status=503)
        return web.json_response(self.signing_key.jwks())

    async def start(self) -> None:
        """Connect to the database, start Realtime and listen on the port."""
        if self._runner is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=10)
            if self._storage_dir is None:
                self._storage_dir = Path(tempfile.mkdtemp(prefix="localsupabase-storage-"))
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_get("/auth/v1/.well-known/jwks.json", self._jwks)
            RestApi(self._pool, self.jwt_secret, self.faults).add_routes(app)
            StorageApi(self._pool, self.jwt_secret, self.faults, self._storage_dir).add_routes(app)
            self._realtime = RealtimeServer(self._pool, jwt_secret=self.jwt_secret, faults=self.faults)
            self._realtime.add_routes(app)
            await self._realtime.start()
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every connection and socket and remove the temporary storage folder."""
        # Realtime first: it closes its websockets, which would otherwise hold the HTTP shutdown up.
        if self._realtime is not None:
            realtime, self._realtime = self._realtime, None
            await realtime.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._own_storage_dir and self._storage_dir is not None:
            shutil.rmtree(self._storage_dir, ignore_errors=True)
            self._storage_dir = None

    async def __aenter__(self) -> LocalSupabase:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
