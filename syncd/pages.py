"""Reading every row a PostgREST query selects, a page at a time.

PostgREST answers a read with at most ``max_rows`` rows (``db-max-rows``; 1000 on a hosted Supabase
project and in supabase/config.toml) and says nothing when it cut the answer short. So a read that may
meet more rows (a project's scenes and clips, the list of projects, a user's voices) asks for pages of
:data:`PAGE_ROWS` until one comes back short. A Supabase project whose ``max_rows`` is below that would
look complete after its first page: syncd needs at least the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.errors import UpstreamError

PAGE_ROWS = 1000


async def every_row(query: Callable[[], Any]) -> list[dict[str, Any]]:
    """Every row of ``query()``, a request builder made afresh for each page and ordered down to the
    rows' ids, so that pages follow each other.

    A row that moves from one page to the next while they are read (a row inserted before it) comes
    once: rows are kept by id.

    Raises:
        UpstreamError: an answer is not a list of objects.
    """
    rows: dict[Any, dict[str, Any]] = {}
    offset = 0
    while True:
        answer = await query().range(offset, offset + PAGE_ROWS - 1).execute()
        page = answer.data
        if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
            raise UpstreamError(f"expected a list of rows, got {type(page).__name__}")
        for row in page:
            rows.setdefault(row.get("id", len(rows)), row)
        if len(page) < PAGE_ROWS:
            return list(rows.values())
        offset += PAGE_ROWS
