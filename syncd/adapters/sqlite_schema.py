"""The embedded store's schema: the six tables of supabase/migrations, in SQLite.

Types map as follows: uuid and text → TEXT, jsonb → TEXT holding JSON, double precision → REAL,
integer and bigint → INTEGER, timestamptz → TEXT in ISO 8601 with the UTC offset (the form Supabase
returns). Defaults and checks are the same as in Postgres; tests/adapters/test_local.py compares them.
"""

from __future__ import annotations

import sqlite3
from typing import Final, Literal

from syncd.adapters.fileformat import transaction

ColumnKind = Literal["text", "json", "real", "int"]
"""How a column's value is stored and decoded."""

NOW: Final = "(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))"

COLUMNS: Final[dict[str, dict[str, ColumnKind]]] = {
    "projects": {
        "id": "text",
        "user_id": "text",
        "title": "text",
        "script": "text",
        "status": "text",
        "aspect_ratio": "text",
        "settings": "json",
        "version": "int",
        "created_at": "text",
        "updated_at": "text",
    },
    "voices": {
        "id": "text",
        "user_id": "text",
        "name": "text",
        "provider": "text",
        "voice_ref": "text",
        "sample_url": "text",
        "settings": "json",
        "created_at": "text",
        "updated_at": "text",
    },
    "scenes": {
        "id": "text",
        "project_id": "text",
        "scene_index": "int",
        "heading": "text",
        "body": "text",
        "duration": "real",
        "voice_id": "text",
        "version": "int",
        "created_at": "text",
        "updated_at": "text",
    },
    "clips": {
        "id": "text",
        "project_id": "text",
        "scene_id": "text",
        "provider": "text",
        "prompt": "text",
        "file_url": "text",
        "thumbnail_url": "text",
        "status": "text",
        "duration": "real",
        "trim_start": "real",
        "trim_end": "real",
        "order_index": "int",
        "metadata": "json",
        "version": "int",
        "created_at": "text",
        "updated_at": "text",
    },
    "exports": {
        "id": "text",
        "project_id": "text",
        "status": "text",
        "format": "text",
        "resolution": "text",
        "progress": "real",
        "file_url": "text",
        "error": "text",
        "created_at": "text",
        "updated_at": "text",
    },
    "audio_files": {
        "id": "text",
        "project_id": "text",
        "scene_id": "text",
        "voice_id": "text",
        "kind": "text",
        "file_url": "text",
        "duration": "real",
        "created_at": "text",
        "updated_at": "text",
    },
}
"""Every column of every table, in the order of the Postgres schema, with how it is stored."""

MUTATIONS_TABLE: Final = f"""create table if not exists syncd_mutations (
  project_id text not null,
  client_id text not null,
  mid integer not null,
  applied_at text not null default {NOW},
  primary key (project_id, client_id)
)"""
"""The record of applied mutations: per project and client id, the highest mid applied. Every mid up
to it counts as applied (a client's mutations reach the store in mid order), so the record grows with
a project's clients, not its edits. Keyed by project first: client ids are public, so a mutation is
named within its project."""

DDL: Final = f"""
create table if not exists projects (
  id text primary key,
  user_id text null,
  title text not null default 'Untitled project',
  script text not null default '',
  status text not null default 'draft'
    check (status in ('draft', 'generating', 'ready', 'exporting', 'archived')),
  aspect_ratio text not null default '16:9' check (aspect_ratio in ('16:9', '9:16', '1:1', '4:5')),
  settings text not null default '{{}}',
  version integer not null default 1,
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
create table if not exists voices (
  id text primary key,
  user_id text null,
  name text not null default '',
  provider text not null default '',
  voice_ref text not null default '',
  sample_url text null,
  settings text not null default '{{}}',
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
create table if not exists scenes (
  id text primary key,
  project_id text not null references projects (id) on delete cascade,
  scene_index integer not null default 0,
  heading text not null default '',
  body text not null default '',
  duration real not null default 0 check (duration >= 0),
  voice_id text null references voices (id) on delete set null,
  version integer not null default 1,
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
create table if not exists clips (
  id text primary key,
  project_id text not null references projects (id) on delete cascade,
  scene_id text null references scenes (id) on delete set null,
  provider text not null default '',
  prompt text not null default '',
  file_url text null,
  thumbnail_url text null,
  status text not null default 'pending' check (status in ('pending', 'generating', 'ready', 'failed')),
  duration real not null default 0,
  trim_start real not null default 0,
  trim_end real null,
  order_index integer not null default 0,
  metadata text not null default '{{}}',
  version integer not null default 1,
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
create table if not exists exports (
  id text primary key,
  project_id text not null references projects (id) on delete cascade,
  status text not null default 'queued' check (status in ('queued', 'rendering', 'done', 'failed')),
  format text not null default 'mp4' check (format in ('mp4', 'webm', 'mov', 'gif')),
  resolution text not null default '1080p',
  progress real not null default 0 check (progress between 0 and 1),
  file_url text null,
  error text null,
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
create table if not exists audio_files (
  id text primary key,
  project_id text not null references projects (id) on delete cascade,
  scene_id text null references scenes (id) on delete set null,
  voice_id text null references voices (id) on delete set null,
  kind text not null default 'voice' check (kind in ('voice', 'music', 'sfx')),
  file_url text null,
  duration real not null default 0,
  created_at text not null default {NOW},
  updated_at text not null default {NOW}
);
{MUTATIONS_TABLE};
create table if not exists syncd_fences (
  project_id text primary key references projects (id) on delete cascade,
  token integer not null check (token >= 0),
  raised_at text not null default {NOW}
);
create index if not exists projects_user_id_idx on projects (user_id);
create index if not exists scenes_project_idx on scenes (project_id, scene_index);
create index if not exists clips_project_idx on clips (project_id, order_index);
create index if not exists clips_scene_idx on clips (scene_id);
create index if not exists exports_project_idx on exports (project_id);
create index if not exists audio_files_project_idx on audio_files (project_id);
"""
"""Creates the store; safe to run on an existing one."""

FORMAT: Final = 2
"""The store's format number (`syncd.adapters.fileformat`): 1 kept a row per applied mutation in
``syncd_mutations``, 2 keeps each client's highest mid per project (`migrate` turns 1 into 2)."""

MUTATIONS_KEY: Final = ("project_id", "client_id")
"""The columns of the key of ``syncd_mutations``, in order."""


def migrate(db: sqlite3.Connection) -> bool:
    """Bring a store made by an earlier version up to `DDL`; run after it. Returns whether it changed.

    Stores made by earlier versions keep a row per applied mutation in ``syncd_mutations``, keyed by
    ``(client_id, mid)`` or ``(project_id, client_id, mid)``. SQLite cannot change a primary key, so the
    table is copied into one with the new key, keeping each client's highest mid per project (with
    when it was applied): every mutation recorded before still counts as applied.

    Raises:
        sqlite3.Error: the store cannot be read or written.
    """
    info = db.execute("pragma table_info(syncd_mutations)").fetchall()
    # pragma table_info: (cid, name, type, notnull, default, pk); pk is the column's place in the key.
    key = tuple(name for _, name, _, _, _, pk in sorted(info, key=lambda c: c[5]) if pk > 0)
    if key == MUTATIONS_KEY:
        return False
    with transaction(db):
        db.execute("alter table syncd_mutations rename to syncd_mutations_old")
        # It served the pruning of old rows, which the new table has none of.
        db.execute("drop index if exists syncd_mutations_applied_idx")
        db.execute(MUTATIONS_TABLE)
        # SQLite takes a bare column of a max() query from the row holding the max: the highest mid's time.
        db.execute(
            "insert into syncd_mutations (project_id, client_id, mid, applied_at)"
            " select project_id, client_id, max(mid), applied_at from syncd_mutations_old"
            " group by project_id, client_id"
        )
        db.execute("drop table syncd_mutations_old")
    return True
