"""The ``localsupabase`` command (also ``python -m localsupabase``): the stand-in run by hand.

Starts a throwaway PostgreSQL 15 cluster, prepares a Supabase-like database in it (the bootstrap, then
the migrations and the seed of a Supabase CLI project folder, ``./supabase`` by default), serves REST,
Storage and Realtime in front of it, and prints one JSON line::

    {"url": ..., "anon_key": ..., "service_key": ..., "jwt_secret": ..., "db_url": ...}

It runs until SIGINT or SIGTERM, then stops everything and removes every file it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from localsupabase.app import LocalSupabase
from localsupabase.postgres import (
    PostgresError,
    PostgresServer,
    prepare_supabase_database,
    project_sql_files,
    require_wal2json,
)

DATABASE = "supabase_local"
EXIT_USAGE = 2
EXIT_FAILURE = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each ends the stand-in and removes what it made; SIGHUP comes when its terminal is closed."""


async def serve(dsn: str, *, port: int, jwt_secret: str | None) -> None:
    """Serve the stand-in over ``dsn`` until SIGINT, SIGTERM or SIGHUP (its terminal closed) arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    async with LocalSupabase(dsn, port=port, jwt_secret=jwt_secret) as stack:
        line = {
            "url": stack.url,
            "anon_key": stack.anon_key,
            "service_key": stack.service_key,
            "jwt_secret": stack.jwt_secret,
            "db_url": dsn,
        }
        print(json.dumps(line), flush=True)
        await stop.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localsupabase",
        description="Local Supabase stand-in (REST, Storage, Realtime) over a throwaway PostgreSQL 15.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--jwt-secret", default=None, help="secret that signs the keys (default: random)")
    parser.add_argument(
        "--supabase-dir",
        type=Path,
        default=Path("supabase"),
        help="Supabase CLI project folder whose migrations/*.sql and seed.sql to load (default: ./supabase)",
    )
    parser.add_argument("--no-seed", action="store_true", help="do not load the project's seed.sql")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the stand-in and its database, and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        sql_files = project_sql_files(args.supabase_dir, seed=not args.no_seed)
    except FileNotFoundError as exc:
        parser.print_usage(sys.stderr)
        print(f"localsupabase: {exc} (run it in the project's root or pass --supabase-dir)", file=sys.stderr)
        return EXIT_USAGE
    try:
        require_wal2json()
    except PostgresError as exc:
        print(f"localsupabase: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    # A signal during the database setup must still clean up: turn SIGTERM and SIGHUP into
    # KeyboardInterrupt until the event loop takes the signals over.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    try:
        with PostgresServer() as server:
            try:
                dsn = prepare_supabase_database(server, DATABASE, sql_files)
                asyncio.run(serve(dsn, port=args.port, jwt_secret=args.jwt_secret))
            finally:
                # The cluster's removal must finish even if a second signal arrives meanwhile.
                for signum in STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_IGN)
    except PostgresError as exc:
        print(f"localsupabase: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    return 0
