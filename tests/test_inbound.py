"""Tests of syncd/inbound.py: client frames are validated before they reach the core."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import inbound
from syncd.config import GatewaySettings
from syncd.errors import FrameError
from syncd.inbound import (
    HelloFrame,
    InsertFrame,
    PatchFrame,
    PingFrame,
    ReorderFrame,
    parse_frame,
)
from syncd.outbound import ack, encode
from syncd.rows import MAX_JSON_DEPTH

P = str(uuid.uuid4())
C = str(uuid.uuid4())
R = "0b1e0000-0000-4000-8000-0000000000aa"  # fixed: it is in the ids of parametrized tests


def parse(frame: object, max_bytes: int = 1 << 20) -> object:
    return parse_frame(json.dumps(frame), max_bytes=max_bytes)


def test_hello_with_resume() -> None:
    """A hello with every field parses to a Hello."""
    hello = parse(
        {
            "type": "hello",
            "protocol": 1,
            "project_id": P,
            "client_id": C,
            "token": None,
            "resume": {"epoch": "e", "seq": 4},
        }
    )
    assert isinstance(hello, HelloFrame)
    assert hello.resume is not None
    assert hello.resume.seq == 4


def test_patch_is_normalised() -> None:
    """A patch's set is checked against the table and normalised."""
    patch = parse({"type": "patch", "mid": 1, "table": "scenes", "id": R, "set": {"duration": 3}})
    assert isinstance(patch, PatchFrame)
    assert patch.set == {"duration": 3.0}


def test_insert_gets_defaults_and_keeps_project_id() -> None:
    """An insert with only id and index is completed with defaults; project_id is passed to the core."""
    ins = parse(
        {"type": "insert", "mid": 2, "table": "clips", "row": {"id": R, "order_index": 1, "project_id": P}}
    )
    assert isinstance(ins, InsertFrame)
    assert ins.row["status"] == "pending"
    assert ins.row["project_id"] == P


def test_ping_any_t() -> None:
    """A ping carries any JSON value."""
    ping = parse({"type": "ping", "t": [1, "x"]})
    assert isinstance(ping, PingFrame)
    assert ping.t == [1, "x"]


@pytest.mark.parametrize(
    ("frame", "code", "message", "mid"),
    [
        ("{not json", "bad_request", "frame is not valid JSON", None),
        ("[1, 2]", "bad_request", "frame must be a JSON object", None),
        ({"type": "shout", "mid": 3}, "bad_request", "type: unknown frame type 'shout'", 3),
        ({"mid": 3}, "bad_request", "type: unknown frame type None", 3),
        (
            {"type": "patch", "mid": 4, "table": "scenes", "id": R, "set": {}, "x": 1},
            "bad_request",
            "patch.x: Extra",
            4,
        ),
        (
            {"type": "patch", "mid": "4", "table": "scenes", "id": R, "set": {"heading": "a"}},
            "bad_request",
            "patch.mid",
            None,
        ),
        (
            {"type": "patch", "mid": 5, "table": "voices", "id": R, "set": {"name": "a"}},
            "bad_request",
            "patch.table",
            5,
        ),
        (
            {"type": "patch", "mid": 6, "table": "scenes", "id": R, "set": {"heading": 1}},
            "bad_request",
            "set.heading",
            6,
        ),
        (
            {"type": "patch", "mid": 7, "table": "scenes", "id": R, "set": {"version": 9}},
            "bad_request",
            "read-only",
            7,
        ),
        (
            {"type": "insert", "mid": 8, "table": "projects", "row": {"id": R}},
            "bad_request",
            "insert.table",
            8,
        ),
        (
            {"type": "insert", "mid": 9, "table": "scenes", "row": {"scene_index": 0}},
            "bad_request",
            "row.id: required",
            9,
        ),
        (
            {"type": "reorder", "mid": 10, "table": "scenes", "ids": [R, R]},
            "bad_request",
            "more than once",
            10,
        ),
        (
            {"type": "delete", "mid": 11, "table": "clips", "id": "x"},
            "bad_request",
            "delete.id: must be a UUID",
            11,
        ),
        (
            {"type": "reorder", "mid": 12, "table": "clips", "ids": [R, "x"]},
            "bad_request",
            "reorder.ids.1: must be a UUID",
            12,
        ),
        (
            {"type": "hello", "protocol": 1, "project_id": P, "client_id": "c1"},
            "bad_request",
            "hello.client_id: must be a UUID",
            None,
        ),
        (
            {"type": "hello", "protocol": 2, "project_id": P, "client_id": C},
            "bad_request",
            "hello.protocol",
            None,
        ),
    ],
)
def test_bad_frames_name_the_problem(frame: object, code: str, message: str, mid: int | None) -> None:
    """Every malformed frame raises FrameError with its code, a message naming the field, and its mid."""
    data = frame if isinstance(frame, str) else json.dumps(frame)
    with pytest.raises(FrameError) as caught:
        parse_frame(data, max_bytes=1 << 20)
    assert caught.value.code == code
    assert message in caught.value.message
    assert caught.value.mid == mid


def test_oversized_frame() -> None:
    """A frame over the limit is too_large."""
    big = json.dumps({"type": "patch", "mid": 1, "table": "scenes", "id": R, "set": {"body": "x" * 2000}})
    with pytest.raises(FrameError) as caught:
        parse_frame(big, max_bytes=1024)
    assert caught.value.code == "too_large"


def test_reorder_ok() -> None:
    """A reorder of distinct ids parses."""
    frame = parse({"type": "reorder", "mid": 1, "table": "clips", "ids": [R, P]})
    assert isinstance(frame, ReorderFrame)
    assert frame.ids == [R, P]


def test_encode_is_compact_utf8() -> None:
    """Server frames are encoded once, compactly, as UTF-8."""
    assert encode({"type": "pong", "t": "é"}) == '{"type":"pong","t":"é"}'.encode()


def _patch_text(table: str, set_json: str) -> str:
    """A patch as JSON text with ``set`` spliced in verbatim: escapes and NaN stay as written."""
    return f'{{"type":"patch","mid":12,"table":"{table}","id":"{R}","set":{set_json}}}'


def _nested(depth: int) -> str:
    """A ping whose ``t`` nests arrays so that the frame has ``depth`` levels in all."""
    return '{"type":"ping","t":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize(
    ("data", "where", "mid"),
    [
        (_patch_text("projects", '{"settings":{"\\udfff":1}}'), "patch.set.settings.\\udfff: ", 12),
        (
            _patch_text("projects", '{"settings":{"a":[1,{"b":"x\\ud800y"}]}}'),
            "patch.set.settings.a.1.b: ",
            12,
        ),
        (_patch_text("projects", '{"title":"\\udc00"}'), "patch.set.title: ", 12),
        (_patch_text("projects", '{"\\udfff":1}'), "patch.set.\\udfff: ", 12),
        (
            f'{{"type":"insert","mid":13,"table":"clips","row":{{"id":"{R}","metadata":{{"k":["\\udbff"]}}}}}}',
            "insert.row.metadata.k.0: ",
            13,
        ),
        ('{"type":"ping","t":"\\udfff"}', "ping.t: ", None),
        ('{"type":"ping","t":{"\\ud800":0}}', "ping.t.\\ud800: ", None),
        ('{"type":"ping","\\udfff":0}', "ping.\\udfff: ", None),
    ],
)
def test_lone_surrogates_are_refused_naming_the_path(data: str, where: str, mid: int | None) -> None:
    """A lone surrogate in any string or key, at any depth, is bad_request naming its path."""
    with pytest.raises(FrameError) as caught:
        parse_frame(data, max_bytes=1 << 20)
    assert (caught.value.code, caught.value.mid) == ("bad_request", mid)
    assert caught.value.message.startswith(where)
    assert "lone UTF-16 surrogate" in caught.value.message
    encode({"type": "error", "message": caught.value.message})  # the answer itself can be sent


@pytest.mark.parametrize(
    ("data", "where", "mid"),
    [
        (_patch_text("scenes", '{"heading":"a\\u0000b"}'), "patch.set.heading: ", 12),
        (_patch_text("projects", '{"settings":{"k\\u0000":"x"}}'), "patch.set.settings.k\\u0000: ", 12),
        ('{"type":"ping","t":"\\u0000"}', "ping.t: ", None),
    ],
)
def test_nul_characters_are_refused_naming_the_path(data: str, where: str, mid: int | None) -> None:
    """PostgreSQL's text and jsonb cannot hold a NUL: refused anywhere in a frame, patches' short path too."""
    with pytest.raises(FrameError) as caught:
        parse_frame(data, max_bytes=1 << 20)
    assert (caught.value.code, caught.value.mid) == ("bad_request", mid)
    assert caught.value.message.startswith(where + "text holds a NUL character")


def test_a_long_key_is_cut_in_the_error() -> None:
    """The path in an error shows at most 40 characters of a key, so the answer stays small."""
    with pytest.raises(FrameError) as caught:
        parse_frame('{"type":"ping","t":{"' + "k" * 10_000 + '\\udfff":0}}', max_bytes=1 << 20)
    assert caught.value.message.startswith("ping.t." + "k" * 40 + "…: ")
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
@pytest.mark.parametrize(
    ("template", "where"),
    [
        (_patch_text("projects", '{"settings":{"fps":%s}}'), "patch.set.settings.fps: "),
        (_patch_text("clips", '{"metadata":{"list":[0,%s]}}'), "patch.set.metadata.list.1: "),
        (_patch_text("scenes", '{"duration":%s}'), "patch.set.duration: "),
        ('{"type":"ping","t":%s}', "ping.t: "),
    ],
)
def test_numbers_that_are_not_json_are_refused(template: str, where: str, number: str) -> None:
    """NaN, Infinity and numbers beyond a double are bad_request naming the field."""
    with pytest.raises(FrameError) as caught:
        parse_frame(template % number, max_bytes=1 << 20)
    assert caught.value.code == "bad_request"
    assert caught.value.message.startswith(where)
    assert "finite" in caught.value.message


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30])
def test_row_integers_must_be_json_safe(value: int) -> None:
    """An integer in a row beyond ±(2^53 - 1) is refused: a browser would read another number."""
    with pytest.raises(FrameError) as caught:
        parse_frame(_patch_text("projects", f'{{"settings":{{"n":[{value}]}}}}'), max_bytes=1 << 20)
    assert caught.value.message.startswith("patch.set.settings.n.0: integer out of the JSON-safe range")
    assert caught.value.mid == 12


def test_json_safe_integers_are_kept() -> None:
    """The largest safe integers pass unchanged."""
    frame = parse(
        {
            "type": "patch",
            "mid": 1,
            "table": "projects",
            "id": R,
            "set": {"settings": {"a": [2**53 - 1, -(2**53 - 1)]}},
        }
    )
    assert isinstance(frame, PatchFrame)
    assert frame.set == {"settings": {"a": [2**53 - 1, -(2**53 - 1)]}}


def test_nesting_up_to_the_limit_is_accepted() -> None:
    """A frame exactly ``max_depth`` levels deep parses; one more level is refused, naming where."""
    assert isinstance(parse_frame(_nested(MAX_JSON_DEPTH), max_bytes=1 << 20), PingFrame)
    with pytest.raises(FrameError) as caught:
        parse_frame(_nested(MAX_JSON_DEPTH + 1), max_bytes=1 << 20)
    assert caught.value.message == "ping.t" + ".0" * (MAX_JSON_DEPTH - 1) + (
        f": nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    )
    with pytest.raises(FrameError, match="nested deeper than 4 levels"):
        parse_frame(_nested(5), max_bytes=1 << 20, max_depth=4)


def test_the_depth_limit_is_the_gateway_default() -> None:
    """parse_frame's default depth is the setting's default."""
    assert GatewaySettings().max_json_depth == MAX_JSON_DEPTH


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_nested(100_000), "frame is nested deeper than 32 levels of arrays and objects"),
        ('{"type":"ping","t":' + "9" * 5000 + "}", "frame holds an integer of more than 4300 digits"),
        (json.dumps({"type": "ping", "t": 1}).encode("utf-16"), "binary frame is not valid UTF-8"),
        (b'{"type":"ping","t":"\xed\xa0\x80"}', "binary frame is not valid UTF-8"),
        (b'{"type":"ping","t":"\xff"}', "binary frame is not valid UTF-8"),
    ],
)
def test_parser_failures_are_bad_request(data: str | bytes, message: str) -> None:
    """What the JSON decoder cannot read (too deep, too many digits, not UTF-8) is bad_request."""
    with pytest.raises(FrameError) as caught:
        parse_frame(data, max_bytes=1 << 20)
    assert caught.value.code == "bad_request"
    assert caught.value.message.startswith(message)


def test_a_utf8_binary_frame_is_read() -> None:
    """A binary frame holding UTF-8 JSON is a frame like any other."""
    frame = parse_frame(json.dumps({"type": "ping", "t": "é"}, ensure_ascii=False).encode(), max_bytes=1024)
    assert frame == PingFrame(type="ping", t="é")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_encode_refuses_what_is_not_json(value: float) -> None:
    """No server frame can carry NaN or Infinity: browsers' JSON.parse refuses them."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode({"type": "pong", "t": [value]})


# -- the short path for well-formed patches ------------------------------------------------------------


def _outcome(
    data: str | bytes, max_bytes: int = 1 << 20, max_depth: int = MAX_JSON_DEPTH
) -> tuple[object, ...]:
    try:
        frame = parse_frame(data, max_bytes=max_bytes, max_depth=max_depth)
    except FrameError as exc:
        return ("error", exc.code, exc.message, exc.mid)
    return ("ok", type(frame), frame, [(k, type(v)) for k, v in getattr(frame, "set", {}).items()])


def _both_ways(data: str | bytes, **limits: int) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The outcome with the short path, then with the general path alone."""
    short = _outcome(data, **limits)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inbound, "_well_formed_patch", lambda raw, max_depth: None)
        general = _outcome(data, **limits)
    return short, general


def test_a_common_patch_takes_the_short_path_to_the_same_frame() -> None:
    """The editors' usual patch is answered by the short path, with the frame the general path makes."""
    raw = {"type": "patch", "mid": 7, "table": "projects", "id": R.upper(), "set": {"settings": {"k": 1}}}
    short = inbound._well_formed_patch(raw, MAX_JSON_DEPTH)
    assert short == PatchFrame(
        type="patch", mid=7, table="projects", id=R.upper(), set={"settings": {"k": 1}}
    )
    assert _both_ways(json.dumps(raw))[0] == ("ok", PatchFrame, short, [("settings", dict)])


@pytest.mark.parametrize(
    "data",
    [
        _patch_text("scenes", '{"duration":3}'),  # normalised: 3 -> 3.0
        _patch_text("scenes", '{"body":"b","heading":"h"}'),  # key order: the model's
        _patch_text("scenes", '{"heading":1}'),
        _patch_text("scenes", '{"version":1}'),
        _patch_text("scenes", '{"nope":1}'),
        _patch_text("scenes", "{}"),
        _patch_text("scenes", "[]"),
        _patch_text("voices", '{"name":"a"}'),
        _patch_text("projects", '{"settings":{"n":9007199254740992}}'),
        _patch_text("projects", '{"settings":{"n":-9007199254740991}}'),
        _patch_text("projects", '{"settings":{"n":1e400}}'),
        _patch_text("projects", '{"settings":{"n":NaN}}'),
        _patch_text("projects", '{"settings":{"s":"\\ud800"}}'),
        _patch_text("projects", '{"settings":{"\\udc00":1}}'),
        _patch_text("projects", '{"title":"caf\\u00e9 \\ud83d\\ude00"}'),
        _patch_text("projects", '{"settings":{"a":' + "[" * 29 + "]" * 29 + "}}"),  # 32 levels
        _patch_text("projects", '{"settings":{"a":' + "[" * 30 + "]" * 30 + "}}"),
        _patch_text("projects", '{"settings":{"a":[true,false,null,1.5,"x",{}]}}'),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"mid":12', '"mid":true'),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"mid":12', '"mid":-1'),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"mid":12', '"mid":9007199254740993'),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"mid":12', '"mid":12.0'),
        _patch_text("projects", '{"settings":{"n":1}}').replace(R, R + "\\n"),
        _patch_text("projects", '{"settings":{"n":1}}').replace(R, "x"),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"table":"projects"', '"table":["projects"]'),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"type"', '"x":1,"type"'),
        _patch_text("projects", '{"settings":{"n":1}}').replace(',"mid":12', ""),
        _patch_text("projects", '{"settings":{"n":1}}').replace('"id":', '"i\\ud800d":'),
    ],
)
def test_the_short_path_answers_as_the_general_one(data: str) -> None:
    """Good or bad, a patch gives the same frame, or the same error, with the short path or without it."""
    short, general = _both_ways(data)
    assert short == general


def test_the_short_path_keeps_the_depth_setting() -> None:
    """The depth limit is the caller's, through either path; beyond its own walk it leaves it to the other."""
    deep = _patch_text("projects", '{"settings":{"a":' + "[" * 7 + "]" * 7 + "}}")  # 10 levels
    short, general = _both_ways(deep, max_depth=9)
    assert short == general
    assert _outcome(deep, max_depth=9)[0] == "error"
    assert _outcome(deep, max_depth=10)[0] == "ok"
    deeper = _patch_text("projects", '{"settings":{"a":' + "[" * 97 + "]" * 97 + "}}")  # 100 levels
    short, general = _both_ways(deeper, max_depth=256)
    assert short == general
    assert short[0] == "ok"


_FIELD_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**54), max_value=2**54)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)
_FIELD_NAMES = st.sampled_from(
    [
        "settings",
        "title",
        "status",
        "duration",
        "heading",
        "body",
        "metadata",
        "trim_end",
        "version",
        "x",
        "id",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    table=st.sampled_from(["projects", "scenes", "clips", "voices"]),
    values=st.dictionaries(_FIELD_NAMES, _FIELD_VALUES, max_size=3),
    mid=st.integers(min_value=-1, max_value=2**53 + 1) | st.booleans() | st.floats(),
    max_depth=st.integers(min_value=4, max_value=40),
)
def test_random_patches_are_answered_the_same_either_way(
    table: str, values: dict[str, object], mid: object, max_depth: int
) -> None:
    """Random patches (bad values, bad fields, bad mids, any depth limit) agree between the two paths."""
    data = json.dumps({"type": "patch", "mid": mid, "table": table, "id": R, "set": values})
    short, general = _both_ways(data, max_depth=max_depth)
    assert short == general


@pytest.mark.parametrize(("mid", "seq"), [(0, 0), (1, 2), (2**53, 10**12), (7, 2**63 + 1)])
def test_an_ack_is_the_encoding_of_its_frame(mid: int, seq: int) -> None:
    """The ack, written out directly, is byte for byte what encoding its frame gives."""
    assert ack(mid, seq) == encode({"type": "ack", "mid": mid, "seq": seq})
