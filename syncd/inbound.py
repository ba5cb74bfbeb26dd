"""Editor protocol v1 on the wire: parsing client frames and encoding server frames.

Every client frame is checked here, with pydantic, before anything reaches the core: the JSON, the
``type``, the fields and their types, and (with :mod:`syncd.rows`) the row fields of ``patch`` and
``insert``. A frame that fails becomes a :class:`FrameError` naming what is wrong and where.
docs/protocol.md is the full text of the protocol.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from syncd import jsonlib
from syncd.errors import FieldError, FrameError
from syncd.rows import (
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
    UUID_RE,
    Uuid,
    check_json,
    first_error,
    validate_fields,
    validate_insert,
    validate_set,
)

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


def parse_frame(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> ClientFrame:
    """Parse and validate one client frame.

    Every value in the frame must be JSON that any reader takes back unchanged: no lone surrogate in
    a string or key, no ``NaN`` or ``Infinity``, at most ``max_depth`` levels of arrays and objects
    (see :func:`syncd.rows.check_json`). Row fields are checked against the table: a ``patch`` comes
    back with its ``set`` validated and normalised, an ``insert`` with its ``row`` complete (defaults
    filled in).

    Args:
        data: a text frame, or a binary frame, which must be UTF-8.
        max_bytes: the largest frame accepted (``gateway.max_frame_bytes``).
        max_depth: the deepest nesting accepted, the frame's own object being level 1
            (``gateway.max_json_depth``).

    Raises:
        FrameError: the frame is too large, not UTF-8, not JSON, not an object, nested too deep, of
            an unknown type, or has a missing, extra, wrongly typed or non-portable field.
    """
    size = _size(data)
    try:
        raw = _load(data, max_depth)
    except FrameError:
        if size > max_bytes:
            raise FrameError("too_large", _too_large(size, max_bytes)) from None
        raise
    if size <= max_bytes and type(raw) is dict and raw.get("type") == "patch":
        patch = _well_formed_patch(raw, max_depth)
        if patch is not None:
            return patch
    mid = raw.get("mid") if isinstance(raw, dict) else None
    mid = mid if isinstance(mid, int) and not isinstance(mid, bool) and abs(mid) <= 2**53 else None
    if size > max_bytes:
        # Parsed all the same (the server caps frames at a few times the limit) so that the error
        # carries the mid and the editor can tell which of its mutations was refused.
        raise FrameError("too_large", _too_large(size, max_bytes), mid)
    if not isinstance(raw, dict):
        raise FrameError("bad_request", "frame must be a JSON object")
    kind = raw.get("type")
    model = _FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None or not isinstance(kind, str):
        known = ", ".join(_FRAMES)
        shown = repr(kind)  # escapes surrogates; cut so that a huge value makes no huge answer
        shown = shown if len(shown) <= 60 else shown[:60] + "…"
        raise FrameError("bad_request", f"type: unknown frame type {shown} (known: {known})", mid)
    try:
        check_json(raw, kind, max_depth=max_depth)
    except FieldError as exc:
        raise FrameError("bad_request", exc.message, mid) from None
    try:
        frame = model.model_validate(raw)
    except ValidationError as exc:
        raise FrameError("bad_request", first_error(exc, kind), mid) from None
    try:
        return _normalise(frame)
    except FieldError as exc:
        raise FrameError("bad_request", f"{kind}.{exc.message}", mid) from None


def _size(data: str | bytes) -> int:
    """A frame's size in bytes; an ASCII text's length is its size in UTF-8, only other text is encoded."""
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    return len(data)


def _load(data: str | bytes, max_depth: int) -> Any:
    """Decode a frame's JSON; FrameError (``bad_request``) if it is not UTF-8 JSON that Python can hold."""
    try:
        return jsonlib.loads(data)
    except UnicodeDecodeError as exc:
        why = f"binary frame is not valid UTF-8 ({exc.reason} at byte {exc.start}); frames are UTF-8 JSON"
        raise FrameError("bad_request", why) from None
    except json.JSONDecodeError as exc:
        raise FrameError("bad_request", f"frame is not valid JSON: {exc}") from None
    except ValueError:
        # Python refuses to convert integers of more digits than this (a guard against slow parsing);
        # no row could hold one anyway.
        limit = sys.get_int_max_str_digits()
        raise FrameError("bad_request", f"frame holds an integer of more than {limit} digits") from None
    except RecursionError:
        # The decoder recurses per level, and gives up far beyond any sensible limit.
        why = f"frame is nested deeper than {max_depth} levels of arrays and objects"
        raise FrameError("bad_request", why) from None


def _too_large(size: int, max_bytes: int) -> str:
    return f"frame of {size} bytes is over the limit of {max_bytes} bytes"


def _normalise(frame: _Frame) -> ClientFrame:
    match frame:
        case PatchFrame():
            values = validate_set(frame.table, frame.set, depth=None)
            return frame if _same(values, frame.set) else frame.model_copy(update={"set": values})
        case InsertFrame():
            return frame.model_copy(update={"row": validate_insert(frame.table, frame.row, depth=None)})
        case ReorderFrame() if len(set(frame.ids)) != len(frame.ids):
            raise FieldError("ids: lists a row more than once")
        case HelloFrame() | DeleteFrame() | ReorderFrame() | FlushFrame() | PingFrame():
            return frame
    raise AssertionError(f"unknown frame class {type(frame).__name__}")


def _same(new: dict[str, JsonValue], old: dict[str, JsonValue]) -> bool:
    """Whether validating changed nothing (not a value, its type, nor the key order): no copy needed."""
    return list(new) == list(old) and all(type(v) is type(old[k]) and v == old[k] for k, v in new.items())


_PATCH_KEYS: Final = frozenset(PatchFrame.model_fields)
_SYNCED_TABLES: Final[dict[str, SyncedTable]] = {table: table for table in get_args(SyncedTable)}
_PLAIN_DEPTH: Final = 64
"""How deep the short path for patches walks a ``set``; deeper ones take the general path (pydantic's
own recursion limit for JSON values is far beyond this)."""


def _well_formed_patch(raw: dict[str, Any], max_depth: int) -> PatchFrame | None:
    """The commonest frame, a valid ``patch``, checked in one walk; None for a patch it does not pass.

    It applies every rule of the general path (the frame's fields and types as :class:`PatchFrame`
    checks them, :func:`check_json` over the frame with ``max_depth``, then :func:`validate_set`) but
    only as a yes-or-no: a patch it cannot pass, for whatever reason, goes the general way, which
    parses it again and raises the error that names the problem. Its answer is the general path's.
    """
    if raw.keys() != _PATCH_KEYS:
        return None
    mid, table, row_id, values = raw["mid"], raw["table"], raw["id"], raw["set"]
    synced = _SYNCED_TABLES.get(table) if type(table) is str else None
    if (
        synced is None
        or type(mid) is not int
        or not 0 <= mid <= 2**53
        or type(row_id) is not str
        or UUID_RE.fullmatch(row_id) is None
        or type(values) is not dict
        or not values
        # The frame is level 1, its set level 2.
        or not _plain(values, 2, min(max_depth, _PLAIN_DEPTH))
    ):
        return None
    try:
        checked = validate_fields(synced, values)
        # The model still checks the frame: the walk above only spares the general path's two walks.
        return PatchFrame.model_validate(
            {"type": "patch", "mid": mid, "table": table, "id": row_id, "set": checked}
        )
    except (FieldError, ValidationError):
        return None


def _plain(value: object, depth: int, max_depth: int) -> bool:
    """Whether ``value`` at ``depth`` passes :func:`check_json` both with ``max_depth`` and with the
    JSON-safe integer range (what the frame and its ``set`` are each checked with)."""
    if isinstance(value, str):
        return "\x00" not in value and (value.isascii() or _utf8(value))
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return depth <= max_depth and all(
            "\x00" not in key and (key.isascii() or _utf8(key)) and _plain(item, depth + 1, max_depth)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return depth <= max_depth and all(_plain(item, depth + 1, max_depth) for item in value)
    return False


def _utf8(text: str) -> bool:
    """Whether ``text`` holds no lone surrogate (what UTF-8 cannot carry)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
