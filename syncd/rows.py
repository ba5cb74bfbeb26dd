"""Pydantic models of the rows of the six tables: validation at the boundary, never inside the core.

Each synced table has two models. ``<Table>Fields`` holds what an editor may set, with the database's
defaults, and validates strictly (a string is not a number). ``<Table>Row`` is a whole row as the
database returns it, including the read-only columns that only the database sets (``id``,
``project_id``, ``user_id``, ``created_at``, ``updated_at``, ``version``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, TypeAdapter, ValidationError

from syncd.core.schema import EDITABLE_FIELDS, READ_ONLY_FIELDS, Table
from syncd.errors import FieldError

UUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
"""A UUID in its canonical text form; kept as text, which is how it travels in JSON."""

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


def validate_set(table: Table, values: dict[str, Any]) -> dict[str, JsonValue]:
    """Check the fields of a ``patch`` and return them as JSON values.

    Raises:
        FieldError: an unknown, read-only or wrongly typed field, or an empty ``set``.
    """
    if not values:
        raise FieldError("set: must name at least one field")
    _refuse_read_only(table, values, "set")
    # In field order, as the model checks and dumps them: the first error and the key order are the
    # model's. Every editable field's validated value is already its JSON value.
    result: dict[str, JsonValue] = {}
    for name, adapter in _SET_FIELDS[table].items():
        if name in values:
            try:
                result[name] = adapter.validate_python(values[name])
            except ValidationError as exc:
                raise FieldError(_first_error(exc, f"set.{name}")) from None
    return result


def validate_insert(table: Table, row: dict[str, Any]) -> dict[str, JsonValue]:
    """Check the row of an ``insert`` and return it whole, missing columns filled with their defaults.

    ``id`` is required; ``project_id`` may be given and is passed through as it is: the core checks
    that it names the editor's own project.

    Raises:
        FieldError: no ``id``, a malformed ``id``, or an unknown, read-only or wrongly typed field.
    """
    values = dict(row)
    row_id = values.pop("id", None)
    project_id = values.pop("project_id", None)
    if row_id is None:
        raise FieldError("row.id: required")
    if not isinstance(row_id, str) or re.fullmatch(UUID_PATTERN, row_id) is None:
        raise FieldError("row.id: must be a UUID string")
    _refuse_read_only(table, values, "row")
    try:
        parsed = FIELDS[table].model_validate(values)
    except ValidationError as exc:
        raise FieldError(_first_error(exc, "row")) from None
    result: dict[str, JsonValue] = {"id": row_id.lower(), **parsed.model_dump(mode="json")}
    if project_id is not None:
        if not isinstance(project_id, str) or re.fullmatch(UUID_PATTERN, project_id) is None:
            raise FieldError("row.project_id: must be a UUID string")
        result["project_id"] = project_id.lower()
    return result


def _refuse_read_only(table: Table, values: dict[str, Any], where: str) -> None:
    for name in values:
        if name in READ_ONLY_FIELDS:
            raise FieldError(f"{where}.{name}: read-only, only the database sets it")
        if name not in EDITABLE_FIELDS[table]:
            raise FieldError(f"{where}.{name}: no such field in {table}")


def _first_error(exc: ValidationError, where: str) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in (where, *err["loc"]))
    return f"{loc}: {err['msg']}"
