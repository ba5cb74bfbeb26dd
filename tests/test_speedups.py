"""The optional speed-ups (orjson, uvloop) and their fallbacks: both paths give the same answers.

:mod:`syncd.jsonlib` uses orjson only as a faster way to the standard library's answer; these tests
hold both codecs to the same results on the frames that matter (good ones, and every kind that is
refused), and on random JSON. Where a test needs the fallback, it makes the module unimportable in a
child process, as a machine without the wheel would be.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import jsonlib, outbound
from syncd.errors import FrameError
from syncd.inbound import parse_frame

R = "0b3e8f4c-5a1d-4c2b-9e7f-1a2b3c4d5e6f"

needs_orjson = pytest.mark.skipif(jsonlib.BACKEND != "orjson", reason="orjson is not installed here")

BLOCK = "import sys\nfor name in ('orjson', 'uvloop'):\n    sys.modules[name] = None\n"
"""Run first in a child process: both modules then fail to import, as where no wheel exists."""


def _patch(set_text: str, mid: str = "1") -> str:
    return f'{{"type":"patch","mid":{mid},"table":"projects","id":"{R}","set":{set_text}}}'


FRAMES: list[str | bytes] = [
    _patch('{"settings":{"k":1,"t":1.5}}'),
    _patch('{"title":"caf\\u00e9 \\ud83d\\ude00"}'),
    _patch('{"title":"café 😀"}').encode(),
    _patch('{"settings":{"n":NaN}}'),
    _patch('{"settings":{"n":-Infinity}}'),
    _patch('{"settings":{"n":1e400}}'),
    _patch('{"settings":{"n":9007199254740993}}'),
    _patch('{"settings":{"n":123456789012345678901234567890}}'),
    _patch('{"settings":{"n":-9223372036854775809}}'),
    _patch('{"settings":{"n":18446744073709551616}}'),
    _patch('{"settings":{"n":1}}', mid="18446744073709551616"),
    _patch('{"settings":{"n":1}}', mid="1e20"),
    _patch('{"settings":{"s":"\\ud800"}}'),
    _patch('{"settings":{"\\udc00":1}}'),
    _patch('{"settings":{"a":1,"a":2}}'),
    _patch('{"settings":' + "[" * 40 + "]" * 40 + "}"),
    "[" * 2000 + "]" * 2000,
    '{"type":"ping","t":' + "9" * 5000 + "}",
    '{"type":"ping","t":1,}',
    '\ufeff{"type":"ping","t":1}',
    '{"type":"ping","t":"\x01"}',
    b'{"type":"ping","t":"\xff"}',
    '{"type":"ping","t":"x"}'.encode("utf-16"),
    '{"type":"ping","t":-0}',
    '{"type":"ping","t":-0.0}',
    '{"type":"ping","t":"\ud800"}',
    "not json",
    "",
]


def _outcome(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except FrameError as exc:
        return (exc.code, exc.message, exc.mid)


@needs_orjson
@pytest.mark.parametrize("data", FRAMES)
def test_parse_frame_is_the_same_with_either_decoder(
    data: str | bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every frame parses to the same frame, or fails with the same error, with orjson or without it."""
    fast = _outcome(lambda: parse_frame(data, max_bytes=100_000))
    monkeypatch.setattr(jsonlib, "loads", jsonlib.std_loads)
    slow = _outcome(lambda: parse_frame(data, max_bytes=100_000))
    assert fast == slow
    if isinstance(fast, tuple):
        assert fast[0] == "bad_request"


def _same_json(a: object, b: object) -> bool:
    """Equal, with the same types all the way down (1 and 1.0 differ), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def _decoded(loads: Callable[[str | bytes], Any], text: str | bytes) -> tuple[str, object]:
    try:
        return "ok", loads(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(value=_VALUES, as_bytes=st.booleans(), ascii_only=st.booleans())
def test_decoding_random_json_is_the_same(value: object, as_bytes: bool, ascii_only: bool) -> None:
    """Random JSON (NaN, infinities, big integers, escapes, lone surrogates) decodes the same either way."""
    dumped = json.dumps(value, ensure_ascii=ascii_only)
    text: str | bytes = dumped
    if as_bytes:
        try:
            text = dumped.encode()
        except UnicodeEncodeError:
            text = dumped.encode("utf-8", "surrogatepass")
    fast, slow = _decoded(jsonlib.loads, text), _decoded(jsonlib.std_loads, text)
    assert fast[0] == slow[0]
    assert _same_json(fast[1], slow[1]) if fast[0] == "ok" else fast[1] == slow[1]


def _encoded(dumps: Callable[[Any], bytes], value: object) -> tuple[str, object]:
    try:
        return "ok", json.loads(dumps(value))
    except (ValueError, TypeError) as exc:
        return "error", type(exc)


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(value=_VALUES)
def test_encoding_random_values_is_the_same(value: object) -> None:
    """Whatever the standard library encodes, the fast path encodes to the same JSON; what it refuses
    (NaN, infinities, lone surrogates), the fast path refuses with the same exception."""
    fast, slow = _encoded(jsonlib.dumps, value), _encoded(jsonlib.std_dumps, value)
    assert fast[0] == slow[0]
    assert _same_json(fast[1], slow[1]) if fast[0] == "ok" else fast[1] == slow[1]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"n": math.nan}, ValueError),
        ({"n": [1, {"m": -math.inf}]}, ValueError),
        ({"s": "\ud800"}, UnicodeEncodeError),
        ({"t": object()}, TypeError),
    ],
)
def test_encode_refuses_what_json_has_no_form_for(value: object, error: type[Exception]) -> None:
    """A frame with a NaN, a lone surrogate or a non-JSON value is refused, never sent as null."""
    with pytest.raises(error):
        outbound.encode(value)  # type: ignore[arg-type]


def test_encode_keeps_keys_and_big_integers_as_json_does() -> None:
    """Non-string keys and integers beyond 64 bits come out as the standard library writes them."""
    frame = {1: "a", "big": 2**70, "none": None, "t": "é"}
    assert json.loads(outbound.encode(frame)) == {"1": "a", "big": 2**70, "none": None, "t": "é"}  # type: ignore[arg-type]


def _child(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_orjson_the_standard_library_decodes_and_encodes() -> None:
    """Where orjson cannot be loaded, syncd picks the standard library and says so."""
    out = _child(
        "from syncd import jsonlib, outbound\n"
        "from syncd.inbound import parse_frame\n"
        "print(jsonlib.BACKEND)\n"
        "print(jsonlib.describe())\n"
        "print(jsonlib.loads is jsonlib.std_loads, jsonlib.dumps is jsonlib.std_dumps)\n"
        'print(parse_frame(\'{"type":"ping","t":[1,2.5]}\', max_bytes=100).t)\n'
        "print(outbound.pong({'a': 1}).decode())\n"
    )
    assert out.splitlines() == [
        "json",
        "json: the standard library (orjson is not available)",
        "True True",
        "[1, 2.5]",
        '{"type":"pong","t":{"a":1}}',
    ]


def test_without_uvloop_the_daemon_runs_on_asyncios_loop() -> None:
    """Where uvloop cannot be loaded, the daemon's loop is asyncio's own, and the log line says so."""
    out = _child("from syncd.cli import event_loop\nfactory, name = event_loop()\nprint(factory, name)\n")
    assert out.strip() == "None event loop: asyncio's own (uvloop is not available)"


def test_with_uvloop_the_daemon_runs_on_it() -> None:
    """Where uvloop is installed, the daemon's loop is uvloop's."""
    uvloop = pytest.importorskip("uvloop")
    from syncd.cli import event_loop

    factory, name = event_loop()
    assert factory is uvloop.new_event_loop
    assert name == f"event loop: uvloop {uvloop.__version__}"


def test_journal_encoding_keeps_what_it_always_wrote() -> None:
    """The journal writes what the standard library reads back, a NaN included (as it always did)."""
    from syncd.adapters.outbox import _encode

    value = {"set": {"n": math.nan, "t": "é", "big": 2**70, "none": None}, "k": [1.5, 1e-05]}
    decoded = json.loads(_encode(value))
    assert math.isnan(decoded["set"].pop("n"))
    assert decoded == {"set": {"t": "é", "big": 2**70, "none": None}, "k": [1.5, 1e-05]}


def test_start_objects_are_frozen_out_of_the_collector() -> None:
    """What exists at start leaves the collector's generations; what is made later is still collected."""
    out = _child(
        "import gc\n"
        "from syncd.cli import freeze_start_objects\n"
        "frozen = freeze_start_objects()\n"
        "print(frozen > 10_000, gc.get_freeze_count() == frozen)\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "print(gc.collect() >= 1)\n"
    )
    assert out.split() == ["True", "True", "True"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from([*"0123456789" * 4, *" .-eé😀\ud800"]), max_size=60),
    as_bytes=st.booleans(),
)
def test_long_numbers_are_found_as_a_pattern_would(text: str, as_bytes: bool) -> None:
    """The check for a run of 19 digits (where orjson may lose an integer) agrees with a pattern search."""
    expected = re.search("[0-9]{19}", text) is not None
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert jsonlib.has_long_number(data) is expected
