"""The ephemeral PostgreSQL of the tests: the stand-in's cluster, with this repository's Supabase project.

The cluster code and the bootstrap SQL belong to the stand-in's distribution (``localsupabase.postgres``);
this module adds what only the suite needs: the repository's paths, the template database the tests clone,
and unique database names.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from localsupabase.postgres import (
    BOOTSTRAP_SQL,
    PostgresError,
    PostgresServer,
    default_base_dir,
    project_sql_files,
)
from localsupabase.postgres import prepare_supabase_database as prepare_with_files

__all__ = [
    "BOOTSTRAP_SQL",
    "MIGRATIONS_DIR",
    "REPO_ROOT",
    "SEED_SQL",
    "SUPABASE_DIR",
    "TEMPLATE_DB",
    "PostgresError",
    "PostgresServer",
    "default_base_dir",
    "prepare_supabase_database",
    "unique_database_name",
]

TEMPLATE_DB = "syncd_template"
"""The database that holds the bootstrap and the migrations once per session; tests clone it."""

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPABASE_DIR = REPO_ROOT / "supabase"
MIGRATIONS_DIR = SUPABASE_DIR / "migrations"
SEED_SQL = SUPABASE_DIR / "seed.sql"


def prepare_supabase_database(server: PostgresServer, name: str, *, seed: bool = False) -> str:
    """Create database ``name`` with the bootstrap, ``supabase/migrations`` and (if ``seed``) the seed.

    Returns:
        The new database's DSN.
    """
    return prepare_with_files(server, name, project_sql_files(SUPABASE_DIR, seed=seed))


def unique_database_name(prefix: str = "syncd_test") -> str:
    """Return a database name that no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
