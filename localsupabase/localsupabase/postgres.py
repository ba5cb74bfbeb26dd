"""An ephemeral PostgreSQL 15 cluster, and a database in it prepared as a hosted Supabase project's.

The cluster lives in a temporary folder, listens on 127.0.0.1 on a free port, trusts loopback connections
as ``postgres`` and runs with ``wal_level=logical`` so that logical decoding (wal2json) works. When run
as root, every server command runs as the ``postgres`` user, because Postgres refuses root.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"

BOOTSTRAP_SQL = Path(__file__).with_name("bootstrap.sql")
"""What a hosted Supabase database has before any migration: roles, ``auth.uid()``, storage, publication."""

_SERVER_USER = "postgres"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_START_ATTEMPTS = 5
_MIN_SHM_FREE = 2 << 30

# Durability is worthless for throwaway clusters, so fsync goes; synchronous_commit stays on, because
# logical decoding can miss commits whose WAL is not flushed yet.
_SETTINGS = {
    "listen_addresses": f"'{LOOPBACK}'",
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "200",
    "shared_buffers": "'32MB'",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "on",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class PostgresError(RuntimeError):
    """A server command or a psql run failed; the message carries its output."""


def bin_dir() -> Path:
    """Return the folder of the PostgreSQL 15 server binaries."""
    default = Path("/usr/lib/postgresql/15/bin")
    if (default / "postgres").exists():
        return default
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        return Path(found.stdout.strip())
    raise PostgresError(
        "PostgreSQL 15 binaries not found (looked in /usr/lib/postgresql/15/bin and pg_config);"
        " on Debian: apt-get install postgresql-15 postgresql-15-wal2json"
    )


def require_wal2json() -> None:
    """Check that the server can load the wal2json output plugin, which Realtime's slot needs.

    Raises:
        PostgresError: the PostgreSQL binaries or the plugin are missing (the message says what to install).
    """
    found = subprocess.run(
        [str(bin_dir() / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=False
    )
    if found.returncode == 0 and (Path(found.stdout.strip()) / "wal2json.so").is_file():
        return
    raise PostgresError(
        "the wal2json output plugin of PostgreSQL 15 is not installed;"
        " on Debian: apt-get install postgresql-15-wal2json"
    )


def default_base_dir() -> Path | None:
    """Return where clusters go by default: /dev/shm when it has room, else the system temp folder (None).

    On the disks of our CI machines every CREATE DATABASE ... TEMPLATE took about 0.3 s; in memory it takes
    0.03 s, and the tests clone one database per test.
    """
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
    except OSError:
        return None
    if os.access(shm, os.W_OK) and stats.f_bavail * stats.f_frsize >= _MIN_SHM_FREE:
        return shm
    return None


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now (a server may still lose the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """Return the environment without libpq variables, which would redirect psql elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _quote_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


class PostgresServer:
    """An ephemeral PostgreSQL 15 cluster on 127.0.0.1 with wal_level=logical, for tests and the stand-in.

    Args:
        base_dir: Folder in which the cluster's own folder is made; by default /dev/shm when it has room,
            else the system's temporary folder. The ``postgres`` user must be able to enter it when
            running as root.
    """

    host: str
    port: int

    def __init__(self, base_dir: Path | None = None) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._base_dir = base_dir if base_dir is not None else default_base_dir()
        self._root: Path | None = None
        self._running = False
        self._bin = bin_dir()
        self._as_root = os.geteuid() == 0

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (only valid after :meth:`start`)."""
        if self._root is None:
            raise PostgresError("the server has not been started")
        return self._root / "data"

    @property
    def log_file(self) -> Path:
        """The server log (only valid after :meth:`start`)."""
        if self._root is None:
            raise PostgresError("the server has not been started")
        return self._root / "postgres.log"

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Create the cluster and start it; return once it accepts connections."""
        if self._running:
            return
        self._root = Path(tempfile.mkdtemp(prefix="localsupabase-pg-", dir=self._base_dir))
        try:
            self._init_cluster()
            self._start_server()
        except BaseException:
            self._remove_root()
            raise
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove everything it created."""
        if self._running:
            self._running = False
            atexit.unregister(self.stop)
            self._server_command(
                [str(self._bin / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"],
                check=False,
            )
        self._remove_root()

    def dsn(self, dbname: str = "postgres") -> str:
        """Return the libpq URL of ``dbname`` as the superuser ``postgres`` (trusted on loopback)."""
        return f"postgresql://{_SERVER_USER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name``, copied from ``template`` if given, and return its DSN."""
        sql = f"create database {_quote_identifier(name)}"
        if template is not None:
            sql += f" template {_quote_identifier(template)}"
        self.psql("postgres", sql)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating its connections first."""
        self.psql("postgres", f"drop database if exists {_quote_identifier(name)} with (force)")

    def psql(self, dbname: str, sql_or_file: str | Path) -> None:
        """Run SQL text (a ``str``) or a SQL file (a ``Path``) in ``dbname``, stopping at the first error.

        Raises:
            PostgresError: with psql's error output when a statement fails.
        """
        if isinstance(sql_or_file, Path):
            self.psql_files(dbname, [sql_or_file])
        else:
            self._psql(dbname, ["-f", "-"], stdin=sql_or_file)

    def psql_files(self, dbname: str, files: list[Path]) -> None:
        """Run several SQL files in ``dbname`` in one psql session, in order, stopping at the first error."""
        args: list[str] = []
        for file in files:
            args += ["-f", str(file)]
        self._psql(dbname, args, stdin="")

    def _psql(self, dbname: str, args: list[str], stdin: str) -> None:
        if not self._running:
            raise PostgresError("the server is not running")
        command = [
            str(self._bin / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.dsn(dbname),
            *args,
        ]
        # Notices ("policy does not exist, skipping") would bury the one error that matters.
        env = dict(_clean_env(), PGOPTIONS="-c client_min_messages=warning")
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise PostgresError(f"psql failed in database {dbname!r}:\n{done.stderr.strip()}")

    def _init_cluster(self) -> None:
        assert self._root is not None
        if self._as_root:
            # mkdtemp makes the folder 0700 and owned by root; the server user must own it.
            shutil.chown(self._root, user=_SERVER_USER, group=_SERVER_USER)
        self._server_command(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                _SERVER_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        settings = dict(_SETTINGS, unix_socket_directories=f"'{self.data_dir}'")
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# ephemeral test cluster\n" + lines)

    def _start_server(self) -> None:
        # Another process may take the free port between our probe and the server's bind: try a new one.
        for _ in range(_START_ATTEMPTS):
            self.port = free_port(self.host)
            started = self._server_command(
                [
                    str(self._bin / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    f"-p {self.port}",
                ],
                check=False,
            )
            if started.returncode == 0:
                self._running = True
                return
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            if "could not bind" not in log and "Address already in use" not in log:
                raise PostgresError(f"PostgreSQL did not start:\n{started.stderr.strip()}\n{log[-2000:]}")
            self.log_file.unlink()
        raise PostgresError(f"PostgreSQL found no free port in {_START_ATTEMPTS} attempts")

    def _server_command(self, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        program = Path(command[0]).name
        if self._as_root:
            command = ["runuser", "-u", _SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), cwd="/")
        if check and done.returncode != 0:
            raise PostgresError(f"{program} failed:\n{done.stdout}{done.stderr}".strip())
        return done

    def _remove_root(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def project_sql_files(supabase_dir: Path, *, seed: bool = True) -> list[Path]:
    """Return the SQL files of a Supabase CLI project folder, in the order ``supabase db reset`` runs them.

    That is every ``migrations/*.sql`` in name order, then ``seed.sql`` when ``seed`` is true and it exists.

    Raises:
        FileNotFoundError: ``supabase_dir`` is not a folder.
    """
    if not supabase_dir.is_dir():
        raise FileNotFoundError(f"Supabase project folder not found: {supabase_dir}")
    files = sorted((supabase_dir / "migrations").glob("*.sql"))
    seed_sql = supabase_dir / "seed.sql"
    if seed and seed_sql.is_file():
        files.append(seed_sql)
    return files


def prepare_supabase_database(server: PostgresServer, name: str, sql_files: Iterable[Path] = ()) -> str:
    """Create database ``name`` as a hosted Supabase project's database would be, and return its DSN.

    Runs the bootstrap (:data:`BOOTSTRAP_SQL`, what Supabase provides before any migration), then
    ``sql_files`` in the order given, in one psql session that stops at the first error.
    """
    dsn = server.create_database(name)
    try:
        server.psql_files(name, [BOOTSTRAP_SQL, *sql_files])
    except BaseException:
        # A half-prepared database must not be mistaken for a good one on the next attempt.
        server.drop_database(name)
        raise
    return dsn
