"""What the core knows of the synced tables: their names and which fields an editor may change.

The database schema (supabase/migrations) and the row models (syncd/rows.py) hold the column types;
tests/test_rows.py checks that the three agree.
"""

from typing import Final, Literal

Table = Literal["projects", "scenes", "clips"]
"""A table whose rows syncd keeps live."""

TABLES: Final[tuple[Table, ...]] = ("projects", "scenes", "clips")

SideTable = Literal["exports", "audio_files"]
"""A table whose rows editors see and follow but do not edit; the engine passes their changes on."""

SIDE_TABLES: Final[tuple[SideTable, ...]] = ("exports", "audio_files")

StreamTable = Table | SideTable
"""The table of a ``change`` in a project's stream."""

_BY_NAME: Final[dict[object, Table]] = {table: table for table in TABLES}


def table_named(name: object) -> Table:
    """Return the synced table of this name; every lookup by name (journal, wire, database) comes here.

    Raises:
        ValueError: no synced table has this name.
    """
    table = _BY_NAME.get(name) if isinstance(name, str) else None
    if table is None:
        raise ValueError(f"table {name!r} is not synced")
    return table


CHILD_TABLES: Final[tuple[Table, ...]] = ("scenes", "clips")
"""Tables whose rows editors may insert, delete and reorder; each row has a ``project_id``."""

READ_ONLY_FIELDS: Final[frozenset[str]] = frozenset(
    {"id", "project_id", "user_id", "created_at", "updated_at", "version"}
)
"""Fields that only the database sets."""

EDITABLE_FIELDS: Final[dict[Table, frozenset[str]]] = {
    "projects": frozenset({"title", "script", "status", "aspect_ratio", "settings"}),
    "scenes": frozenset({"scene_index", "heading", "body", "duration", "voice_id"}),
    "clips": frozenset(
        {
            "scene_id",
            "provider",
            "prompt",
            "file_url",
            "thumbnail_url",
            "status",
            "duration",
            "trim_start",
            "trim_end",
            "order_index",
            "metadata",
        }
    ),
}
"""Fields an editor may set with ``patch`` or ``insert``."""

ORDER_FIELD: Final[dict[Table, str]] = {"scenes": "scene_index", "clips": "order_index"}
"""The field that ``reorder`` sets to a row's position."""
