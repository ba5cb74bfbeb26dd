"""Run SQL as the role of a request, the way PostgREST and Realtime do, so that RLS really applies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg


@asynccontextmanager
async def as_role(conn: asyncpg.Connection, claims: dict[str, Any]) -> AsyncIterator[asyncpg.Connection]:
    """Open a transaction on ``conn`` running as ``claims["role"]`` with ``request.jwt.claims`` set.

    Everything is transaction-local (``set local``), so the connection goes back to the pool clean.
    """
    role = claims["role"]
    async with conn.transaction():
        # The role name comes from a verified JWT and is one of three known names; quote it anyway.
        await conn.execute(f'set local role "{role}"')
        await conn.execute(
            "select set_config('request.jwt.claims', $1, true),"
            " set_config('request.jwt.claim.sub', $2, true)",
            json.dumps(claims),
            str(claims.get("sub", "")),
        )
        yield conn
