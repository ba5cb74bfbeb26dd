"""Editor protocol v1 on the wire: parsing client frames and encoding server frames.

Every client frame is checked here, with pydantic, before anything reaches the core: the JSON, the
``type``, the fields and their types, and (with :mod:`syncd.rows`) the row fields of ``patch`` and
``insert``. A frame that fails becomes a :class:`FrameError` naming what is wrong and where.
docs/protocol.md is the full text of the protocol.
"""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from syncd.errors import FieldError, FrameError
from syncd.rows import Uuid, validate_insert, validate_set

PROTOCOL: Final = 1

SyncedTable = Literal["projects", "scenes", "clips"]
ChildTable = Literal["scenes", "clips"]
Mid = Annotated[int, Field(ge=0, le=2**53)]
"""A mutation id: an integer per client id, strictly increasing; JSON-safe in every language."""


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResumeFrame(_Frame):
    """Where an editor left off: the epoch and the last ``seq`` it applied."""

    epoch: Annotated[str, Field(max_length=100)]
    seq: Annotated[int, Field(ge=0)]


class HelloFrame(_Frame):
    """The first frame: which project, who, and where to resume."""

    type: Literal["hello"]
    protocol: Literal[1]
    project_id: Uuid
    client_id: Uuid
    token: Annotated[str, Field(max_length=16_384)] | None = None
    resume: ResumeFrame | None = None


class PatchFrame(_Frame):
    """Change fields of one row."""

    type: Literal["patch"]
    mid: Mid
    table: SyncedTable
    id: Uuid
    set: dict[str, JsonValue]


class InsertFrame(_Frame):
    """Add a row to scenes or clips."""

    type: Literal["insert"]
    mid: Mid
    table: ChildTable
    row: dict[str, JsonValue]


class DeleteFrame(_Frame):
    """Remove a row from scenes or clips."""

    type: Literal["delete"]
    mid: Mid
    table: ChildTable
    id: Uuid


class ReorderFrame(_Frame):
    """Set the order of scenes or clips to the order of ``ids``."""

    type: Literal["reorder"]
    mid: Mid
    table: ChildTable
    ids: Annotated[list[Uuid], Field(min_length=1, max_length=10_000)]


class FlushFrame(_Frame):
    """Save now."""

    type: Literal["flush"]
    mid: Mid


class PingFrame(_Frame):
    """Answered by ``pong`` with the same ``t``."""

    type: Literal["ping"]
    t: JsonValue = None


MutationFrame = PatchFrame | InsertFrame | DeleteFrame | ReorderFrame | FlushFrame
"""A client frame that changes the project (or asks to save it) and is acknowledged by ``mid``."""

ClientFrame = HelloFrame | MutationFrame | PingFrame
"""Any frame an editor may send."""

_FRAMES: Final[dict[str, type[_Frame]]] = {
    "hello": HelloFrame,
    "patch": PatchFrame,
    "insert": InsertFrame,
    "delete": DeleteFrame,
    "reorder": ReorderFrame,
    "flush": FlushFrame,
    "ping": PingFrame,
}


def parse_frame(data: str | bytes, *, max_bytes: int) -> ClientFrame:
    """Parse and validate one client frame.

    Row fields are checked against the table: a ``patch`` comes back with its ``set`` validated and
    normalised, an ``insert`` with its ``row`` complete (defaults filled in).

    Raises:
        FrameError: the frame is too large, not JSON, not an object, of an unknown type, or has a
            missing, extra or wrongly typed field.
    """
    size = len(data.encode() if isinstance(data, str) else data)
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if size > max_bytes:
            raise FrameError("too_large", _too_large(size, max_bytes)) from None
        raise FrameError("bad_request", f"frame is not valid JSON: {exc}") from None
    mid = raw.get("mid") if isinstance(raw, dict) else None
    mid = mid if isinstance(mid, int) and not isinstance(mid, bool) else None
    if size > max_bytes:
        # Parsed all the same (the server caps frames at a few times the limit) so that the error
        # carries the mid and the editor can tell which of its mutations was refused.
        raise FrameError("too_large", _too_large(size, max_bytes), mid)
    if not isinstance(raw, dict):
        raise FrameError("bad_request", "frame must be a JSON object")
    kind = raw.get("type")
    model = _FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(_FRAMES)
        raise FrameError("bad_request", f"type: unknown frame type {kind!r} (known: {known})", mid)
    try:
        frame = model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in (kind, *err["loc"]))
        raise FrameError("bad_request", f"{where}: {err['msg']}", mid) from None
    try:
        return _normalise(frame)
    except FieldError as exc:
        raise FrameError("bad_request", f"{kind}.{exc.message}", mid) from None


def _too_large(size: int, max_bytes: int) -> str:
    return f"frame of {size} bytes is over the limit of {max_bytes} bytes"


def _normalise(frame: _Frame) -> ClientFrame:
    match frame:
        case PatchFrame():
            values = validate_set(frame.table, frame.set)
            return frame if _same(values, frame.set) else frame.model_copy(update={"set": values})
        case InsertFrame():
            return frame.model_copy(update={"row": validate_insert(frame.table, frame.row)})
        case ReorderFrame() if len(set(frame.ids)) != len(frame.ids):
            raise FieldError("ids: lists a row more than once")
        case HelloFrame() | DeleteFrame() | ReorderFrame() | FlushFrame() | PingFrame():
            return frame
    raise AssertionError(f"unknown frame class {type(frame).__name__}")


def _same(new: dict[str, JsonValue], old: dict[str, JsonValue]) -> bool:
    """Whether validating changed nothing (not a value, its type, nor the key order): no copy needed."""
    return list(new) == list(old) and all(type(v) is type(old[k]) and v == old[k] for k, v in new.items())
