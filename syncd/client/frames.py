"""Checks of the server frames a client relies on, and the JSON form of the frames it sends.

A client refuses a server frame that lacks a field it needs: `BadServerFrame` names the frame and
the field, and the client closes the connection with 1002.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from syncd.client.view import Frame, Row
from syncd.errors import SyncdError
from syncd.wire import CHANGE_OPS

__all__ = [
    "BadServerFrame",
    "check_change",
    "encode",
    "get",
    "get_optional_int",
    "get_rows",
    "parse",
    "ping_key",
]

_T = TypeVar("_T")


class BadServerFrame(SyncdError, ValueError):
    """A server frame that breaks the protocol; the message says which frame and field."""


def parse(message: str | bytes) -> Frame:
    """Read one WebSocket message as a frame.

    Raises:
        BadServerFrame: the message is not UTF-8 JSON holding an object.
    """
    try:
        frame = json.loads(message)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadServerFrame(f"a frame must be JSON: {exc}") from None
    except RecursionError:
        raise BadServerFrame("a frame must be JSON: nested too deep to decode") from None
    if not isinstance(frame, dict):
        raise BadServerFrame("a frame must be a JSON object")
    return frame


def encode(frame: Frame) -> str:
    """Write a client frame as compact JSON.

    Raises:
        ValueError, TypeError: the frame holds a value JSON cannot carry (NaN, a set, ...).
    """
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)


def get(frame: Frame, key: str, kind: type[_T]) -> _T:
    """Return ``frame[key]`` if it is a ``kind`` (a bool is no int here), else raise `BadServerFrame`."""
    value = frame.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadServerFrame(
            f"{frame.get('type')}.{key}: expected {kind.__name__}, got {type(value).__name__}"
        )
    return value


def get_optional_int(frame: Frame, key: str) -> int | None:
    """Return ``frame[key]`` if it is an int or null (or missing), else raise `BadServerFrame`."""
    if frame.get(key) is None:
        return None
    return get(frame, key, int)


def get_rows(frame: Frame, key: str) -> list[Row]:
    """Return ``frame[key]`` if it is a list of objects with a string ``id``, else raise `BadServerFrame`."""
    rows = get(frame, key, list)
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise BadServerFrame(f"{frame.get('type')}.{key}: every row must be an object with a string id")
    return rows


def check_change(frame: Frame) -> int:
    """Check a ``change`` frame's fields and return its seq; raise `BadServerFrame` if one is wrong."""
    seq = get(frame, "seq", int)
    # Any table name is taken: tables may be added to the stream (protocol §4); the view keeps the
    # rows of the ones it does not sync aside.
    get(frame, "table", str)
    if get(frame, "op", str) not in CHANGE_OPS:
        raise BadServerFrame(f"change.op: unknown op {frame['op']!r}")
    get(frame, "id", str)
    if frame["op"] == "insert":
        get(frame, "row", dict)
    elif frame["op"] == "update":
        get(frame, "set", dict)
    return seq


def ping_key(t: Any) -> str:
    """The key that matches a ``pong`` to its ``ping``: ``t`` as canonical JSON (key order ignored)."""
    return json.dumps(t, sort_keys=True, separators=(",", ":"))
