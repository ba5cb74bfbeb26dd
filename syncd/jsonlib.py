"""JSON for the hot path: orjson when it can be loaded, the standard library's ``json`` otherwise.

Both give the same results. orjson is only a faster way to the answer the standard library gives:
whatever it would decide differently, the standard library decides. A frame that orjson refuses
(not JSON, ``NaN``, a lone surrogate, too deep, a number beyond a double) is decoded again by
``json`` so that its error, or the value that the later checks refuse by path, is the same as without
orjson; a frame holding a number of 19 digits or more goes straight to ``json``, because orjson turns
integers beyond 64 bits into floats. Encoding falls back to ``json`` for what orjson refuses (keys that
are not strings, integers beyond 64 bits, lone surrogates), and checks what it would let through:
orjson writes ``NaN`` and ``Infinity`` as ``null``, so output holding ``null`` is encoded again by
``json``, which refuses them.

The choice is made once, at import; :data:`BACKEND` names it and :func:`describe` says it for the
start-up log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

_STD_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_DIGITS: Final = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
"""A ``bytes.translate`` table: every ASCII digit becomes ``0``, every other byte a space."""

_LONG_NUMBER: Final = b"0" * 19
"""A run of 19 digits, once translated: where orjson might read an integer beyond 64 bits as a float (a
false alarm in a string costs only the slower decoder)."""


def has_long_number(data: str | bytes) -> bool:
    """Whether ``data`` holds a run of 19 or more ASCII digits.

    A translation and a substring search, both in C: a regular expression would try a match at every
    position, several times slower on a frame. Text is measured in UTF-8, where no byte of a non-ASCII
    character is a digit, so the answer is the same as for its characters.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return _LONG_NUMBER in raw.translate(_DIGITS)


def std_loads(data: str | bytes) -> Any:
    """Decode with the standard library; ``bytes`` must be UTF-8 (no other encoding is guessed).

    Raises:
        UnicodeDecodeError: ``bytes`` that are not UTF-8.
        ValueError: not JSON (:class:`json.JSONDecodeError`), or an integer of too many digits.
        RecursionError: nested beyond what the decoder's recursion reaches.
    """
    return json.loads(data if isinstance(data, str) else data.decode("utf-8"))


def std_dumps(value: Any) -> bytes:
    """Encode compactly as UTF-8 with the standard library.

    Raises:
        ValueError: a number is not finite.
        UnicodeEncodeError: a string holds a lone surrogate.
        TypeError: a value is not JSON.
    """
    return _STD_ENCODER.encode(value).encode()


def _load_orjson() -> ModuleType | None:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


def _fast_codec(orjson: ModuleType) -> tuple[Callable[[str | bytes], Any], Callable[[Any], bytes]]:
    """``loads`` and ``dumps`` on orjson, each deferring to the standard library where they differ."""
    decode_error = orjson.JSONDecodeError
    encode_error = orjson.JSONEncodeError
    orjson_loads = orjson.loads
    orjson_dumps = orjson.dumps

    def loads(data: str | bytes) -> Any:
        if has_long_number(data):
            return std_loads(data)
        try:
            return orjson_loads(data)
        except decode_error:
            return std_loads(data)

    def dumps(value: Any) -> bytes:
        try:
            out: bytes = orjson_dumps(value)
        except encode_error:
            return std_dumps(value)
        # orjson writes a NaN or an infinity as null; only output with a null can hide one.
        return std_dumps(value) if b"null" in out else out

    return loads, dumps


_orjson = _load_orjson()

BACKEND: Final[str] = "orjson" if _orjson is not None else "json"
"""Which library the hot path uses: ``orjson`` or ``json`` (the standard library)."""

loads: Callable[[str | bytes], Any]
"""Decode a JSON text exactly as :func:`std_loads` does, with its errors."""

dumps: Callable[[Any], bytes]
"""Encode compactly as UTF-8, refusing what :func:`std_dumps` refuses, with the same meaning."""

if _orjson is not None:
    loads, dumps = _fast_codec(_orjson)
else:
    loads, dumps = std_loads, std_dumps


def describe() -> str:
    """The choice, for the start-up log."""
    if _orjson is None:
        return "json: the standard library (orjson is not available)"
    return f"json: orjson {_orjson.__version__}"
