"""Actors and a small world of rows for the schema tests.

The world holds, for each owner (the anonymous studio, Alice, Bob), one row in each of the six tables,
with fixed ids, plus one storage object per owner. Tests act on it as a role, the way PostgREST does,
inside a transaction that is always rolled back, so one world serves a whole module.
"""

# Table and column names in the SQL below come from fixed tuples of this file, never from input.
# ruff: noqa: S608

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

import asyncpg

Owner = Literal["anon", "alice", "bob"]

TABLES: Final = ("projects", "voices", "scenes", "clips", "exports", "audio_files")
OWNERS: Final[tuple[Owner, ...]] = ("anon", "alice", "bob")
BUCKETS: Final = ("clips", "audio", "exports", "thumbnails")

USER_IDS: Final[dict[Owner, uuid.UUID | None]] = {
    "anon": None,
    "alice": uuid.UUID("a11ce000-0000-4000-8000-000000000001"),
    "bob": uuid.UUID("b0b00000-0000-4000-8000-000000000002"),
}

_NAMESPACE = uuid.UUID("5c4e3a00-0000-4000-8000-000000000000")


def row_id(table: str, owner: Owner) -> uuid.UUID:
    """The fixed id of ``owner``'s row in ``table``."""
    return uuid.uuid5(_NAMESPACE, f"{table}:{owner}")


def object_name(owner: Owner, leaf: str = "clips/take-1.mp4") -> str:
    """A storage object name inside the folder of ``owner``'s project."""
    return f"projects/{row_id('projects', owner)}/{leaf}"


@dataclass(frozen=True)
class Actor:
    """Who runs a statement: a database role and, for signed-in users, their user id."""

    name: str
    role: str
    user_id: uuid.UUID | None = None

    def claims(self) -> dict[str, Any]:
        """The JWT claims that PostgREST would put in ``request.jwt.claims``."""
        claims: dict[str, Any] = {"role": self.role}
        if self.user_id is not None:
            claims |= {"sub": str(self.user_id), "aud": "authenticated"}
        return claims


ANON: Final = Actor("anon", "anon")
ALICE: Final = Actor("alice", "authenticated", USER_IDS["alice"])
BOB: Final = Actor("bob", "authenticated", USER_IDS["bob"])
SERVICE: Final = Actor("service_role", "service_role")
ACTORS: Final = (ANON, ALICE, BOB, SERVICE)

REACH: Final[dict[str, frozenset[Owner]]] = {
    "anon": frozenset({"anon"}),
    "alice": frozenset({"alice"}),
    "bob": frozenset({"bob"}),
    "service_role": frozenset(OWNERS),
}
"""Whose rows each actor may read, insert, update and delete."""


@asynccontextmanager
async def acting_as(
    conn: asyncpg.Connection, actor: Actor, *, commit: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """Run the block in a transaction as ``actor``; roll it back unless ``commit`` is true."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"set local role {actor.role}")
        await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(actor.claims()))
        yield conn
    except BaseException:
        await transaction.rollback()
        raise
    if commit:
        await transaction.commit()
    else:
        await transaction.rollback()


def _literal(value: uuid.UUID | None) -> str:
    return "null" if value is None else f"'{value}'"


def world_sql() -> str:
    """SQL (run as superuser) that creates the two users and every owner's rows and storage object."""
    statements = [
        "insert into auth.users (id, email) values "
        f"('{USER_IDS['alice']}', 'alice@example.test'), ('{USER_IDS['bob']}', 'bob@example.test');"
    ]
    for owner in OWNERS:
        user = _literal(USER_IDS[owner])
        project, voice, scene = (row_id(t, owner) for t in ("projects", "voices", "scenes"))
        statements += [
            f"insert into public.projects (id, user_id, title) values ('{project}', {user}, '{owner} film');",
            f"insert into public.voices (id, user_id, name) values ('{voice}', {user}, '{owner} voice');",
            "insert into public.scenes (id, project_id, voice_id, heading) values "
            f"('{scene}', '{project}', '{voice}', '{owner} scene');",
            "insert into public.clips (id, project_id, scene_id, prompt) values "
            f"('{row_id('clips', owner)}', '{project}', '{scene}', '{owner} clip');",
            "insert into public.exports (id, project_id) values "
            f"('{row_id('exports', owner)}', '{project}');",
            "insert into public.audio_files (id, project_id, scene_id, voice_id) values "
            f"('{row_id('audio_files', owner)}', '{project}', '{scene}', '{voice}');",
            f"insert into storage.objects (bucket_id, name) values ('clips', '{object_name(owner)}');",
        ]
    return "\n".join(statements)
