"""``syncd import FILE``: projects exported from the studio's Redux state, written to the backend.

The file is ``{"projects": [...]}``; each project holds its fields and its ``scenes`` and ``clips``
arrays, with keys in camelCase as the frontend keeps them (snake_case is accepted too). The whole file
is checked before anything is written: a bad file gets one message naming the place in it
(``projects[2].clips[0].sceneId: no scene "s9" in this project``) and changes nothing.

Ids that are UUIDs are kept. Any other id is replaced by a UUID derived from it: uuid5 over
:data:`NAMESPACE` and the row's path, ``projects/<owner>/p1`` for a project (``<owner>`` its user id or
``anonymous``) and ``projects/<project's UUID>/scenes/s1`` for its rows. Importing the same file again
finds the same rows, and two users whose browsers made up the same ids get projects of their own.
What differs is updated, what is missing is added, and the rest is skipped. Rows the backend has and
the file lacks are left alone. Everything goes through the backend's own write path (``syncd_apply``
in Supabase mode), so each row's ``version`` rises on an update and open editors hear of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.backend import open_backend
from syncd.config import SyncdSettings
from syncd.core.schema import EDITABLE_FIELDS, Table
from syncd.errors import ConfigError, FieldError, SyncdError, UpstreamError
from syncd.rows import check_json, is_uuid, validate_insert

if TYPE_CHECKING:
    from syncd.adapters.local import LocalBackend
    from syncd.adapters.supabase import SupabaseBackend

NAMESPACE = uuid.UUID("6d1f5a3e-93c4-4f0b-a2d8-5b7e1c9f0a42")
"""The namespace of the ids derived from non-UUID ids; fixed, so that re-imports find their rows."""

_PROJECT_ONLY = frozenset({"user_id"})
"""Project fields that are written when the project is created and never changed by a re-import."""

_IGNORED = frozenset({"id", "project_id", "scenes", "clips", "created_at", "updated_at", "version"})
"""Keys that are not row fields (or that only the database sets): read where needed, never written."""


class ImportFileError(SyncdError):
    """The import file cannot be imported; the message names the place in the file.

    :func:`command` puts the file's name in front of every message of an import, this one's and those
    of the backend alike.
    """


@dataclass
class ImportedProject:
    """One project of the file, checked, with resolved ids and snake_case fields."""

    where: str
    id: str
    user_id: str | None
    fields: dict[str, Any]
    scenes: list[dict[str, Any]]
    clips: list[dict[str, Any]]


@dataclass
class Outcome:
    """What importing one project did (or, in a dry run, would do)."""

    project_id: str
    title: str
    action: str  # "created", "updated" or "skipped"
    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """One line of the report."""
        parts = [f"{_count(n, table)} added" for table, n in self.added.items() if n]
        parts += [f"{_count(n, table)} changed" for table, n in self.changed.items() if n]
        if parts:
            detail = ", ".join(parts)
        else:
            detail = "the project alone, no scenes or clips" if self.action == "created" else "no change"
        return f"{self.action:<8} {self.project_id}  {json.dumps(self.title, ensure_ascii=False)}  ({detail})"


def _count(n: int, table: str) -> str:
    """``1 scene``, ``2 scenes``."""
    noun = "project" if table == "projects" else table[:-1]
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def snake(key: str) -> str:
    """``sceneIndex`` -> ``scene_index``; snake_case keys stay as they are."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


ANONYMOUS: str = "anonymous"
"""The owner part of a derived project id when the project has no user."""


def derived_id(value: object, path: str) -> str:
    """``value`` when it is a UUID (lower case), else the UUID derived from ``path`` (see the module)."""
    if is_uuid(value):
        return value.lower()
    return str(uuid.uuid5(NAMESPACE, path))


def parse_export(text: str) -> list[ImportedProject]:
    """Check an export and return its projects.

    Raises:
        ImportFileError: the text is not JSON or not shaped like an export; names the place.
    """
    repeated: list[_Repeated] = []
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _object_of(pairs, repeated))
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = (
            f"line {exc.lineno} column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ImportFileError(f"not JSON ({detail or 'nested too deeply'})") from None
    if repeated:
        raise ImportFileError(f"{_repeated_key(data)}: the key appears twice in its object")
    if not isinstance(data, dict) or not isinstance(data.get("projects"), list):
        raise ImportFileError('the file must be a JSON object with a "projects" array')
    for key in ("scenes", "clips"):
        if key in data:
            raise ImportFileError(f"{key}: every {key[:-1]} must be inside its project's {key!r} array")
    projects = [_project(raw, f"projects[{i}]") for i, raw in enumerate(data["projects"])]
    seen: dict[str, str] = {}
    for project in projects:
        if project.id in seen:
            raise ImportFileError(f"{project.where}.id: the same project as {seen[project.id]}")
        seen[project.id] = project.where
    # A row id is one row in the store: in two projects, the second project's write would fail halfway.
    for table in ("scenes", "clips"):
        rows_seen: dict[str, str] = {}
        for project in projects:
            for i, row in enumerate(project.scenes if table == "scenes" else project.clips):
                where = f"{project.where}.{table}[{i}]"
                if row["id"] in rows_seen:
                    raise ImportFileError(f"{where}.id: the same {table[:-1]} as {rows_seen[row['id']]}")
                rows_seen[row["id"]] = where
    return projects


class _Repeated(dict[str, Any]):
    """An object of the file that has a key twice; ``key`` is the first such key."""

    key: str


def _object_of(pairs: list[tuple[str, Any]], repeated: list[_Repeated]) -> dict[str, Any]:
    """The object of ``pairs``; one with a key twice is a :class:`_Repeated`, also added to ``repeated``.

    JSON readers differ on which of two values they keep: the file does not say what it means.
    """
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen: set[str] = set()
    marked = _Repeated(found)
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    repeated.append(marked)
    return marked


def _repeated_key(data: object) -> str:
    """The path in the file (``projects[0].id``) of the first key that an object has twice."""
    todo: list[tuple[object, str]] = [(data, "")]
    while todo:  # depth first, in the file's order; a loop, as the file may nest as deep as json allows
        value, where = todo.pop()
        if isinstance(value, _Repeated):
            return f"{where}.{value.key}" if where else value.key
        if isinstance(value, dict):
            todo += reversed([(item, f"{where}.{key}" if where else key) for key, item in value.items()])
        elif isinstance(value, list):
            todo += reversed([(item, f"{where}[{i}]") for i, item in enumerate(value)])
    raise AssertionError("no object has a key twice")


def _object(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ImportFileError(f"{where}: must be an object, not {type(raw).__name__}")
    return raw


def _key(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    """The key of ``raw`` that means field ``name`` (``userId`` or ``user_id``), or None.

    Raises:
        ImportFileError: two keys mean the field, as for the fields :func:`_fields` reads.
    """
    found = None
    for key in raw:
        if snake(key) == name:
            if found is not None:
                raise ImportFileError(f"{where}.{key}: the same field as {found!r}")
            found = key
    return found


def _original_id(raw: Mapping[str, Any], where: str) -> str:
    value = raw.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ImportFileError(f"{where}.id: required, a string")
    try:
        # A lone surrogate cannot be encoded to derive a UUID from it, and no database would keep it.
        check_json(value, f"{where}.id")
    except FieldError as exc:
        raise ImportFileError(exc.message) from None
    return value


def _project(raw_value: object, where: str) -> ImportedProject:
    raw = _object(raw_value, where)
    original = _original_id(raw, where)
    user_key = _key(raw, "user_id", where)
    user_id = raw[user_key] if user_key is not None else None
    if user_id is not None and not is_uuid(user_id):
        raise ImportFileError(f"{where}.{user_key}: must be a UUID or null")
    user_id = user_id.lower() if user_id else None
    # Browsers make up the same short ids ("p1"): without the owner, one user's import would land on
    # another's project.
    project_id = derived_id(original, f"projects/{user_id or ANONYMOUS}/{original}")
    fields = _fields("projects", raw, where, project_id, {})
    fields.setdefault("title", "Untitled project")
    arrays: dict[str, list[Any]] = {}
    for name in ("scenes", "clips"):
        value = raw.get(name, [])
        if not isinstance(value, list):
            raise ImportFileError(f"{where}.{name}: must be an array")
        arrays[name] = value
    seen: dict[Table, set[str]] = {"scenes": set(), "clips": set()}
    scene_ids: dict[str, str] = {}
    scenes = []
    for i, scene_raw in enumerate(arrays["scenes"]):
        scene_where = f"{where}.scenes[{i}]"
        scene = _child("scenes", scene_raw, scene_where, original, project_id, {"scene_index": i})
        original_scene = scene.pop("_original")
        _refuse_repeated(scene["id"], seen["scenes"], scene_where, original_scene)
        scene_ids[original_scene] = scene["id"]
        scenes.append(scene)
    clips: list[dict[str, Any]] = []
    for i, clip_raw in enumerate(arrays["clips"]):
        clip_where = f"{where}.clips[{i}]"
        raw_clip = _object(clip_raw, clip_where)
        resolved = {"scene_id": _scene_ref(raw_clip, clip_where, scene_ids)}
        clip = _child("clips", raw_clip, clip_where, original, project_id, {"order_index": i}, resolved)
        _refuse_repeated(clip["id"], seen["clips"], clip_where, clip.pop("_original"))
        clips.append(clip)
    return ImportedProject(where, project_id, user_id, fields, scenes, clips)


def _refuse_repeated(row_id: str, seen: set[str], where: str, original: str) -> None:
    # Two rows with one id are one row in the store: each import would flip it between the two.
    if row_id in seen:
        raise ImportFileError(f"{where}.id: {original!r} appears twice")
    seen.add(row_id)


def _child(
    table: Table,
    raw_value: object,
    where: str,
    project: str,
    project_id: str,
    defaults: dict[str, Any],
    resolved: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One scene or clip: its id resolved, its fields checked; ``resolved`` replaces fields of ``raw``."""
    raw = _object(raw_value, where)
    original = _original_id(raw, where)
    owner_key = _key(raw, "project_id", where)
    if owner_key is not None and raw[owner_key] not in (None, project, project_id):
        raise ImportFileError(
            f"{where}.{owner_key}: the row is inside project {project!r} but names {raw[owner_key]!r}"
        )
    row_id = derived_id(original, f"projects/{project_id}/{table}/{original}")
    row = _fields(table, raw, where, row_id, defaults, resolved or {})
    return {"id": row_id, **row, "_original": original}


def _scene_ref(raw: Mapping[str, Any], where: str, scene_ids: Mapping[str, str]) -> str | None:
    key = _key(raw, "scene_id", where)
    value = raw[key] if key is not None else None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or value not in scene_ids:
        shown = json.dumps(value, ensure_ascii=False)
        raise ImportFileError(f"{where}.{key}: no scene {shown} in this project")
    return scene_ids[value]


def _fields(
    table: Table,
    raw: Mapping[str, Any],
    where: str,
    row_id: str,
    defaults: dict[str, Any],
    resolved: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The editable fields of ``raw`` (snake_case), checked as an editor's insert is; others ignored."""
    names: dict[str, str] = {}
    for key in raw:
        name = snake(key)
        if name in EDITABLE_FIELDS[table] and name not in _IGNORED:
            if name in names:
                raise ImportFileError(f"{where}.{key}: the same field as {names[name]!r}")
            names[name] = key
    values = {**defaults, **{name: raw[key] for name, key in names.items()}, **(resolved or {})}
    try:
        checked = validate_insert(table, {"id": row_id, **values})
    except FieldError as exc:
        raise ImportFileError(_placed(exc.message, where, names)) from None
    checked.pop("id")
    # Only what the file names (and the defaults) is written; the database fills in the rest.
    return {name: checked[name] for name in values}


def _placed(message: str, where: str, names: Mapping[str, str]) -> str:
    """A row validation message (``row.field: ...``) with the file's place and key instead."""
    path, _, what = message.partition(": ")
    parts = path.split(".")
    if len(parts) > 1 and parts[0] == "row":
        parts = [where, names.get(parts[1], parts[1]), *parts[2:]]
    else:
        parts = [where, *parts[1:]]
    return f"{'.'.join(parts)}: {what}"


async def import_projects(
    settings: SyncdSettings, projects: list[ImportedProject], *, dry_run: bool
) -> list[Outcome]:
    """Write ``projects`` to the configured backend (or only compare, on a dry run).

    Every project is read and planned before the first write, so a file the store refuses (another
    owner, a row id of another project) writes nothing, and a dry run refuses it as the import would.

    Raises:
        ImportFileError: the file conflicts with what the backend holds; names the place in the file.
        UpstreamError: the backend cannot be read or refused a write.
    """
    client_id = str(uuid.uuid4())  # fresh mids every run, so no write is taken for a replay
    mids = iter(range(1, 2**31))
    async with open_backend(settings, one_shot=True, read_only=dry_run) as store:
        plans = []
        for project in projects:
            current = await store.read_project(project.id)
            _check_owner(project, current["project"])
            plans.append((project, current["project"] is None, *_plan(project, current, client_id, mids)))
        await _check_rows_are_free(store, projects)
        if not dry_run:
            for project, created, _, ops in plans:
                if created:
                    row = {"id": project.id, "user_id": project.user_id, **project.fields}
                    try:
                        await store.insert_missing("projects", [row])
                    except UpstreamError as exc:
                        raise UpstreamError(f"{project.where}: {exc}") from exc
                if ops:
                    batch = {"project_id": project.id, "ops": ops, "mutations": [op["by"] for op in ops]}
                    answer = await store.apply_encoded(batch)
                    _check_written(project, answer)
    return [outcome for _, _, outcome, _ in plans]


def _check_owner(project: ImportedProject, current: Mapping[str, Any] | None) -> None:
    """Refuse a project the backend holds under another owner: an import never changes one."""
    if current is None:
        return
    owner = current.get("user_id")
    owner = owner.lower() if isinstance(owner, str) else None
    if owner != project.user_id:
        raise ImportFileError(
            f"{project.where}: project {project.id} belongs to {owner or 'no user'} in the store but to"
            f" {project.user_id or 'no user'} in the file; an import never changes a project's owner"
        )


async def _check_rows_are_free(
    store: LocalBackend | SupabaseBackend, projects: list[ImportedProject]
) -> None:
    """Refuse a scene or clip id that the backend holds in another project (which may not be in the file).

    The write of such a row would be refused, after the projects before it were written.
    """
    for table in ("scenes", "clips"):
        places = {
            row["id"]: (project, f"{project.where}.{table}[{i}]")
            for project in projects
            for i, row in enumerate(project.scenes if table == "scenes" else project.clips)
        }
        held = await store.row_projects(table, list(places))
        for row_id, (project, where) in places.items():
            other = held.get(row_id)
            if other is not None and other != project.id:
                raise ImportFileError(
                    f"{where}.id: the store holds {table[:-1]} {row_id} in another project, {other}"
                )


def _plan(
    project: ImportedProject, current: Mapping[str, Any], client_id: str, mids: Any
) -> tuple[Outcome, list[dict[str, Any]]]:
    """What to write for ``project`` given what the backend has: an outcome and the batch's ops."""
    created = current["project"] is None
    title = str(project.fields.get("title", ""))
    outcome = Outcome(project.id, title, "created" if created else "skipped")
    ops: list[dict[str, Any]] = []
    if not created:
        _diff(
            "projects", {project.id: current["project"]}, [{"id": project.id, **project.fields}], ops, outcome
        )
    children: tuple[tuple[Table, list[dict[str, Any]]], ...] = (
        ("scenes", project.scenes),
        ("clips", project.clips),
    )
    for table, rows in children:
        have = {} if created else {r["id"]: r for r in current[table]}
        _diff(table, have, rows, ops, outcome)
    for op in ops:
        mid = next(mids)
        if op["op"] == "insert":
            op["by"] = [client_id, mid]
        else:
            op["set"] = {name: {"value": value, "by": [client_id, mid]} for name, value in op["set"].items()}
            op["by"] = [client_id, mid]
    if not created and ops:
        outcome.action = "updated"
    return outcome, ops


def _diff(
    table: Table,
    have: Mapping[str, Any],
    rows: list[dict[str, Any]],
    ops: list[dict[str, Any]],
    outcome: Outcome,
) -> None:
    for row in rows:
        existing = have.get(row["id"])
        if existing is None:
            if table != "projects":
                ops.append({"op": "insert", "table": table, "id": row["id"], "row": dict(row)})
                outcome.added[table] = outcome.added.get(table, 0) + 1
            continue
        changed = {
            name: value
            for name, value in row.items()
            if name != "id" and name not in _PROJECT_ONLY and existing.get(name) != value
        }
        if changed:
            ops.append({"op": "update", "table": table, "id": row["id"], "set": changed})
            outcome.changed[table] = outcome.changed.get(table, 0) + 1


def _check_written(project: ImportedProject, answer: Mapping[str, Any]) -> None:
    missing = answer.get("missing") or []
    if missing:
        first = missing[0]
        raise UpstreamError(
            f"{project.where}: {first['table']} row {first['id']} was not written"
            " (its id belongs to another project)"
        )


def command(settings: SyncdSettings, args: argparse.Namespace) -> int:
    """``syncd import FILE [--dry-run]``: check the file, write it, print the report."""
    path: Path = args.file
    try:
        # Windows tools start UTF-8 with a byte order mark, which the JSON decoder refuses.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot read ({exc})") from None
    try:
        projects = parse_export(text)
    except ImportFileError as exc:
        raise ImportFileError(f"{path}: {exc}") from None
    try:
        outcomes = asyncio.run(import_projects(settings, projects, dry_run=args.dry_run))
    except ConfigError:
        raise  # about the settings, not the file; keeps its own exit code
    except SyncdError as exc:
        raise ImportFileError(f"{path}: {exc}") from exc
    for outcome in outcomes:
        print(outcome.line())
    counts = {a: sum(o.action == a for o in outcomes) for a in ("created", "updated", "skipped")}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    tail = " (dry run: nothing written)" if args.dry_run else ""
    print(f"{len(outcomes)} project{'' if len(outcomes) == 1 else 's'}: {summary}{tail}")
    return 0
