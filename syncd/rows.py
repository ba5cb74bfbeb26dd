"""Pydantic models of the rows of the six tables: validation at the boundary, never inside the core.

Each synced table has two models. ``<Table>Fields`` holds what an editor may set, with the database's
defaults, and validates strictly (a string is not a number). ``<Table>Row`` is a whole row as the
database returns it, including the read-only columns that only the database sets (``id``,
``project_id``, ``user_id``, ``created_at``, ``updated_at``, ``version``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, TypeAdapter, ValidationError

from syncd.core.schema import EDITABLE_FIELDS, READ_ONLY_FIELDS, Table
from syncd.errors import FieldError

UUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
"""A UUID in its canonical text form; kept as text, which is how it travels in JSON."""

UUID_RE: Final = re.compile(UUID_PATTERN)
"""``UUID_PATTERN`` compiled, for checks outside pydantic."""


def is_uuid(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a UUID in its canonical text form, in either case."""
    return isinstance(value, str) and UUID_RE.fullmatch(value) is not None


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A duration or a time offset in seconds."""

Index = Annotated[int, Field(ge=0, le=2**31 - 1)]
"""A position in a list (a Postgres ``integer``)."""

ProjectStatus = Literal["draft", "generating", "ready", "exporting", "archived"]
AspectRatio = Literal["16:9", "9:16", "1:1", "4:5"]
ClipStatus = Literal["pending", "generating", "ready", "failed"]
ExportStatus = Literal["queued", "rendering", "done", "failed"]
ExportFormat = Literal["mp4", "webm", "mov", "gif"]
AudioKind = Literal["voice", "music", "sfx"]

_TEXT: Final = 100_000
"""Longest text an editor may set in one field (characters); a script is long, but not unbounded."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer that every JSON reader keeps exact (JavaScript's ``Number.MAX_SAFE_INTEGER``)."""

MAX_JSON_DEPTH: Final = 32
"""How deeply a client frame may nest arrays and objects, its own object being level 1: deep enough
for any project setting, and far from the depth where decoding recurses out of stack (the default of
``gateway.max_json_depth``)."""

FIELD_DEPTH: Final = MAX_JSON_DEPTH - 2
"""Levels of arrays and objects a row field's value may have, itself included, so that an editor can
send it back: a frame (level 1) carries it in its ``set`` or ``row`` (level 2)."""

_SHOWN_KEY: Final = 40
"""Characters of an object key shown in an error's path; a long key is cut, so is the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Lax(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectFields(_Strict):
    """What an editor may change in a project."""

    title: Annotated[str, Field(max_length=500)] = "Untitled project"
    script: Annotated[str, Field(max_length=_TEXT)] = ""
    status: ProjectStatus = "draft"
    aspect_ratio: AspectRatio = "16:9"
    settings: dict[str, JsonValue] = Field(default_factory=dict)


class SceneFields(_Strict):
    """What an editor may set in a scene."""

    scene_index: Index = 0
    heading: Annotated[str, Field(max_length=500)] = ""
    body: Annotated[str, Field(max_length=_TEXT)] = ""
    duration: Seconds = 0.0
    voice_id: Uuid | None = None


class ClipFields(_Strict):
    """What an editor may set in a clip."""

    scene_id: Uuid | None = None
    provider: Annotated[str, Field(max_length=200)] = ""
    prompt: Annotated[str, Field(max_length=_TEXT)] = ""
    file_url: Annotated[str, Field(max_length=2000)] | None = None
    thumbnail_url: Annotated[str, Field(max_length=2000)] | None = None
    status: ClipStatus = "pending"
    duration: Seconds = 0.0
    trim_start: Seconds = 0.0
    trim_end: Seconds | None = None
    order_index: Index = 0
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class _Stamped(_Lax):
    id: Uuid
    created_at: datetime
    updated_at: datetime


class ProjectRow(_Stamped):
    """A row of ``projects``."""

    user_id: Uuid | None
    title: str
    script: str
    status: ProjectStatus
    aspect_ratio: AspectRatio
    settings: dict[str, JsonValue]
    version: int


class SceneRow(_Stamped):
    """A row of ``scenes``."""

    project_id: Uuid
    scene_index: int
    heading: str
    body: str
    duration: float
    voice_id: Uuid | None
    version: int


class ClipRow(_Stamped):
    """A row of ``clips``."""

    project_id: Uuid
    scene_id: Uuid | None
    provider: str
    prompt: str
    file_url: str | None
    thumbnail_url: str | None
    status: ClipStatus
    duration: float
    trim_start: float
    trim_end: float | None
    order_index: int
    metadata: dict[str, JsonValue]
    version: int


class VoiceRow(_Stamped):
    """A row of ``voices``; a voice belongs to a user (or to nobody, for anonymous use)."""

    user_id: Uuid | None
    name: str
    provider: str
    voice_ref: str
    sample_url: str | None
    settings: dict[str, JsonValue]


class ExportRow(_Stamped):
    """A row of ``exports``: one render of a project to a file."""

    project_id: Uuid
    status: ExportStatus
    format: ExportFormat
    resolution: str
    progress: Annotated[float, Field(ge=0, le=1)]
    file_url: str | None
    error: str | None


class AudioFileRow(_Stamped):
    """A row of ``audio_files``: a voice-over, music or effect track of a project."""

    project_id: Uuid
    scene_id: Uuid | None
    voice_id: Uuid | None
    kind: AudioKind
    file_url: str | None
    duration: float


FIELDS: Final[dict[Table, type[_Strict]]] = {
    "projects": ProjectFields,
    "scenes": SceneFields,
    "clips": ClipFields,
}
"""The editable-fields model of each synced table."""

_SET_FIELDS: Final[dict[Table, dict[str, TypeAdapter[Any]]]] = {
    table: {
        name: TypeAdapter(info.rebuild_annotation(), config=ConfigDict(strict=True))
        for name, info in model.model_fields.items()
    }
    for table, model in FIELDS.items()
}
"""One validator per editable field, in the model's field order, built from :data:`FIELDS`.

A patch names one or two fields: checking just those is a fraction of the cost of building the whole
model (defaults included) and dumping it back to JSON values.
"""

ROWS: Final[dict[str, type[_Lax]]] = {
    "projects": ProjectRow,
    "scenes": SceneRow,
    "clips": ClipRow,
    "voices": VoiceRow,
    "exports": ExportRow,
    "audio_files": AudioFileRow,
}
"""The row model of every table."""


def check_json(
    value: object, where: str, *, max_depth: int | None = None, max_int: int | None = None
) -> None:
    """Check that ``value`` is JSON that every reader takes and gives back unchanged.

    Strings (object keys included) must be valid Unicode, with no lone surrogate and no NUL (which
    PostgreSQL cannot store); numbers must be finite (no ``NaN`` or ``Infinity``, which JSON does not
    have); with ``max_int``, integers must lie within ``-max_int`` to ``max_int``; with ``max_depth``,
    arrays and objects may nest that deep, ``value`` itself being level 1 if it is one.

    Args:
        value: a JSON value as :func:`json.loads` returns it.
        where: the path of ``value``, the start of an error's message (``patch.set.settings``).
        max_depth: the deepest nesting allowed; None: unchecked.
        max_int: the largest integer magnitude allowed; None: unchecked.

    Raises:
        FieldError: the first value that breaks a rule, named by its path.
    """
    _check_json(value, [where], 1, max_depth, max_int)


def _check_json(
    value: object, path: list[str | int], depth: int, max_depth: int | None, max_int: int | None
) -> None:
    """Check ``value`` at ``path``; ``path`` grows and shrinks back as the walk goes down and up."""
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(
                f"{_path(path)}: not a finite number (NaN, Infinity and numbers beyond a double's range "
                "are not JSON)"
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if max_int is not None and not -max_int <= value <= max_int:
            raise FieldError(f"{_path(path)}: integer out of the JSON-safe range -{max_int} to {max_int}")
    elif isinstance(value, dict | list):
        if max_depth is not None and depth > max_depth:
            raise FieldError(f"{_path(path)}: nested deeper than {max_depth} levels of arrays and objects")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            path.append(key)
            if isinstance(key, str):
                _check_text(key, path)
            # An ASCII string without NUL, the commonest value (ids, most text), is fine: no call for it.
            if not (type(item) is str and item.isascii() and "\x00" not in item):
                _check_json(item, path, depth + 1, max_depth, max_int)
            path.pop()
    elif value is not None and not isinstance(value, bool):
        raise FieldError(f"{_path(path)}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: list[str | int]) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        # PostgreSQL's text and jsonb cannot hold it: one such edit would fail every save of its project.
        raise FieldError(
            f"{_path(path)}: text holds a NUL character (\\u0000 at character {nul}), which the database "
            "cannot store"
        )
    if text.isascii():
        return
    try:
        # UTF-8 takes every code point but a surrogate; the JSON decoder joins escaped pairs into one
        # character, so a surrogate left in a decoded string stands alone.
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FieldError(
            f"{_path(path)}: text holds a lone UTF-16 surrogate ({_shown(text[exc.start])} at character "
            f"{exc.start}); send valid Unicode"
        ) from None


def _path(path: list[str | int]) -> str:
    """The path as ``a.b.0.c``, safe to send: surrogates escaped, long keys cut."""
    return ".".join(str(part) if isinstance(part, int) else _shown(part) for part in path)


def _shown(text: str) -> str:
    if len(text) > _SHOWN_KEY:
        text = text[:_SHOWN_KEY] + "…"
    text = text.replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if not text.isascii() else text


def check_fields(values: dict[str, Any], where: str, depth: int | None) -> None:
    """:func:`check_json` over a row or a ``set``: integers in the JSON-safe range, and each field's value
    nested at most ``depth`` levels (None: unchecked), itself being level 1 if it is an array or object.

    Raises:
        FieldError: the first value that breaks a rule, named by its path.
    """
    _check_json(values, [where], 0, depth, MAX_SAFE_INTEGER)


def validate_set(
    table: Table, values: dict[str, Any], *, depth: int | None = FIELD_DEPTH
) -> dict[str, JsonValue]:
    """Check the fields of a ``patch`` and return them as JSON values.

    Every value, at any depth, must pass :func:`check_fields`; ``depth`` is None for an editor's frame,
    whose whole nesting the gateway has checked already.

    Raises:
        FieldError: an unknown, read-only or wrongly typed field, a value that is not portable JSON,
            or an empty ``set``.
    """
    if not values:
        raise FieldError("set: must name at least one field")
    check_fields(values, "set", depth)
    return validate_fields(table, values)


def validate_fields(table: Table, values: dict[str, Any]) -> dict[str, JsonValue]:
    """:func:`validate_set` for values that passed its :func:`check_json` already: the fields' own checks.

    Raises:
        FieldError: an unknown, read-only or wrongly typed field.
    """
    _refuse_read_only(table, values, "set")
    # In field order, as the model checks and dumps them: the first error and the key order are the
    # model's. Every editable field's validated value is already its JSON value.
    result: dict[str, JsonValue] = {}
    for name, adapter in _SET_FIELDS[table].items():
        if name in values:
            try:
                result[name] = adapter.validate_python(values[name])
            except ValidationError as exc:
                raise FieldError(first_error(exc, f"set.{name}")) from None
    return result


def validate_insert(
    table: Table, row: dict[str, Any], *, depth: int | None = FIELD_DEPTH
) -> dict[str, JsonValue]:
    """Check the row of an ``insert`` and return it whole, missing columns filled with their defaults.

    ``id`` is required; ``project_id`` may be given and is passed through as it is: the core checks
    that it names the editor's own project.

    Every value, at any depth, must pass :func:`check_fields`; ``depth`` as for :func:`validate_set`.

    Raises:
        FieldError: no ``id``, a malformed ``id``, an unknown, read-only or wrongly typed field, or a
            value that is not portable JSON.
    """
    check_fields(row, "row", depth)
    values = dict(row)
    row_id = values.pop("id", None)
    project_id = values.pop("project_id", None)
    if row_id is None:
        raise FieldError("row.id: required")
    if not is_uuid(row_id):
        raise FieldError("row.id: must be a UUID string")
    _refuse_read_only(table, values, "row")
    try:
        parsed = FIELDS[table].model_validate(values)
    except ValidationError as exc:
        raise FieldError(first_error(exc, "row")) from None
    result: dict[str, JsonValue] = {"id": row_id.lower(), **parsed.model_dump(mode="json")}
    if project_id is not None:
        if not is_uuid(project_id):
            raise FieldError("row.project_id: must be a UUID string")
        result["project_id"] = project_id.lower()
    return result


def _refuse_read_only(table: Table, values: dict[str, Any], where: str) -> None:
    for name in values:
        if name in READ_ONLY_FIELDS:
            raise FieldError(f"{where}.{name}: read-only, only the database sets it")
        if name not in EDITABLE_FIELDS[table]:
            raise FieldError(f"{where}.{name}: no such field in {table}")


def first_error(exc: ValidationError, where: str) -> str:
    """The first problem pydantic found, as ``where.field: what is wrong``.

    An id that is not a UUID says so, rather than showing the regular expression it failed.
    """
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in (where, *err["loc"]))
    if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == UUID_PATTERN:
        return f"{loc}: must be a UUID"
    return f"{loc}: {err['msg']}"
