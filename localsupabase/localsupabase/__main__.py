"""Run the local Supabase stand-in by hand: ``python -m tests.support.localsupabase``.

Starts a throwaway PostgreSQL 15 cluster, prepares a Supabase-like database in it (bootstrap, the
migrations of ``supabase/migrations`` and ``supabase/seed.sql``), serves REST, Storage and Realtime in
front of it, and prints one JSON line::

    {"url": ..., "anon_key": ..., "service_key": ..., "jwt_secret": ..., "db_url": ...}

It runs until SIGINT or SIGTERM, then stops everything and removes every file it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from tests.support.localsupabase.app import LocalSupabase
from tests.support.postgres import PostgresServer, prepare_supabase_database

DATABASE = "supabase_local"


async def serve(dsn: str, *, port: int, jwt_secret: str | None) -> None:
    """Serve the stand-in over ``dsn`` until SIGINT or SIGTERM arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
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


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the stand-in and its database, and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.localsupabase",
        description="Local Supabase stand-in (REST, Storage, Realtime) over a throwaway PostgreSQL.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--jwt-secret", default=None, help="secret that signs the keys (default: random)")
    parser.add_argument("--no-seed", action="store_true", help="do not load supabase/seed.sql")
    args = parser.parse_args(argv)
    # A signal during the database setup must still clean up: turn SIGTERM into KeyboardInterrupt until
    # the event loop takes the signals over.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with PostgresServer() as server:
            try:
                dsn = prepare_supabase_database(server, DATABASE, seed=not args.no_seed)
                asyncio.run(serve(dsn, port=args.port, jwt_secret=args.jwt_secret))
            finally:
                # The cluster's removal must finish even if a second signal arrives meanwhile.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
