"""Tests of syncd/inbound.py: client frames are validated before they reach the core."""

from __future__ import annotations

import json
import uuid

import pytest

from syncd.errors import FrameError
from syncd.inbound import (
    HelloFrame,
    InsertFrame,
    PatchFrame,
    PingFrame,
    ReorderFrame,
    parse_frame,
)
from syncd.outbound import encode

P = str(uuid.uuid4())
C = str(uuid.uuid4())
R = str(uuid.uuid4())


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
        ({"type": "delete", "mid": 11, "table": "clips", "id": "x"}, "bad_request", "delete.id", 11),
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
