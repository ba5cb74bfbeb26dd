"""The Supabase CLI project config agrees with what the migrations create."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import asyncpg

from tests.support.postgres import REPO_ROOT

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]i?B|B)", size)
    assert match is not None, size
    return int(match.group(1)) * _UNITS[match.group(2)]


def _config() -> dict[str, Any]:
    with (REPO_ROOT / "supabase" / "config.toml").open("rb") as file:
        return tomllib.load(file)


def test_config_names_the_project_and_its_services() -> None:
    """config.toml names the project, the API and database ports, Postgres 15 and the enabled services."""
    config = _config()
    assert config["project_id"] == "omegaframe-studio"
    assert (config["api"]["port"], config["db"]["port"], config["db"]["major_version"]) == (54321, 54322, 15)
    assert {"public", "storage"} <= set(config["api"]["schemas"])
    assert all(config[service]["enabled"] for service in ("api", "realtime", "storage", "auth"))
    assert config["db"]["seed"]["sql_paths"] == ["./seed.sql"]


async def test_config_buckets_match_the_migrated_buckets(world: asyncpg.Connection) -> None:
    """Each bucket in config.toml has the visibility, size limit and types of the migrated bucket."""
    storage = _config()["storage"]
    declared = {
        name: (bucket["public"], _bytes(bucket["file_size_limit"]), bucket["allowed_mime_types"])
        for name, bucket in storage["buckets"].items()
    }
    rows = await world.fetch("select id, public, file_size_limit, allowed_mime_types from storage.buckets")
    migrated = {row["id"]: (row["public"], row["file_size_limit"], row["allowed_mime_types"]) for row in rows}
    assert declared == migrated
    assert all(limit <= _bytes(storage["file_size_limit"]) for _, limit, _ in declared.values())
