"""Binding parsing, binding ids and Phoenix serializers of the stand-in, without a server."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localsupabase.filters import (
    Binding,
    BindingError,
    Filter,
    binding_id,
    parse_binding,
    parse_filter,
)
from localsupabase.phoenix import (
    Frame,
    FrameError,
    V1JSONSerializer,
    V2JSONSerializer,
    negotiate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("project_id=eq.10", Filter("project_id", "eq", "10")),
        ("title=neq.a.b", Filter("title", "neq", "a.b")),
        ("n=lt.1", Filter("n", "lt", "1")),
        ("n=lte.1", Filter("n", "lte", "1")),
        ("n=gt.1", Filter("n", "gt", "1")),
        ("n=gte.1", Filter("n", "gte", "1")),
        ("tag=in.(a,b,c)", Filter("tag", "in", "{a,b,c}")),
        # Classic Realtime: the value is everything after the operator, commas and '=' included.
        ("a=eq.1,b=eq.2", Filter("a", "eq", "1,b=eq.2")),
    ],
)
def test_classic_filters_parse(text: str, expected: Filter) -> None:
    """The seven classic operators parse into column, operator and value; `in` becomes an array literal."""
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject=like.hey", 'Error parsing `filter` params: ["like", "hey"]'),
        ("undefined", 'Error parsing `filter` params: ["undefined"]'),
        ("id=eq", 'Error parsing `filter` params: ["eq"]'),
        ("id=not.eq.1", 'Error parsing `filter` params: ["not", "eq.1"]'),
        ("id=in.1,2", "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"),
    ],
)
def test_unsupported_filters_are_refused_with_realtimes_message(text: str, message: str) -> None:
    """Unknown operators, missing parts and unparenthesised `in` values give Realtime's parse errors."""
    with pytest.raises(BindingError) as error:
        parse_filter(text)
    assert str(error.value) == message


def test_binding_shapes_follow_realtime() -> None:
    """schema+table(+filter), schema alone and table alone are accepted; the event maps to an action."""
    full = parse_binding({"event": "UPDATE", "schema": "public", "table": "scenes", "filter": "id=eq.1"})
    schema_only = parse_binding({"event": "*", "schema": "public"})
    table_only = parse_binding({"event": "delete", "table": "scenes"})
    unknown_event = parse_binding({"event": "TRUNCATE", "schema": "public", "table": "scenes"})

    assert (full.action, full.schema, full.table, full.filter) == (
        "UPDATE",
        "public",
        "scenes",
        Filter("id", "eq", "1"),
    )
    assert (schema_only.schema, schema_only.table) == ("public", "*")
    assert (table_only.action, table_only.schema) == ("DELETE", "public")
    assert unknown_event.action == "*"
    assert (
        full.describe()
        == 'event: UPDATE, schema: public, table: scenes, filters: [{"id", "eq", "1"}], select: nil'
    )


@pytest.mark.parametrize(
    "raw",
    [{}, {"event": "*"}, {"schema": "public", "filter": "id=eq.1"}, {"schema": 1, "table": "x"}, "scenes"],
)
def test_bindings_without_a_target_are_refused(raw: object) -> None:
    """A binding without schema or table (or with non-string values) cannot be subscribed."""
    with pytest.raises(BindingError, match="No subscription params provided"):
        parse_binding(raw)


def test_select_is_refused_rather_than_ignored() -> None:
    """Column selection is not implemented, so asking for it fails loudly."""
    with pytest.raises(BindingError, match="select"):
        parse_binding({"event": "*", "schema": "public", "table": "scenes", "select": ["id"]})


def test_binding_ids_are_stable_and_distinct() -> None:
    """Equal bindings share an id and different ones differ, independent of key order."""
    first = binding_id({"event": "*", "schema": "public", "table": "scenes"})
    same = binding_id({"table": "scenes", "schema": "public", "event": "*"})
    other = binding_id({"event": "*", "schema": "public", "table": "clips"})
    assert first == same
    assert first != other
    assert parse_binding({"event": "*", "schema": "public", "table": "scenes"}).id == first


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5))
def test_binding_ids_are_never_zero_and_below_two_to_the_27(raw: dict[str, str]) -> None:
    """Every id lies in [1, 2**27), since realtime-py can never match an id of 0."""
    assert 1 <= binding_id(raw) < 2**27


def test_binding_is_hashable() -> None:
    """Bindings are values: usable as set members for routing."""
    binding = parse_binding({"event": "*", "schema": "public", "table": "scenes", "filter": "id=in.(1,2)"})
    assert binding in {Binding(binding.id, "*", "public", "scenes", Filter("id", "in", "{1,2}"))}


@pytest.mark.parametrize(
    ("vsn", "expected"),
    [
        (None, "1.0.0"),
        ("1.0.0", "1.0.0"),
        ("1.0.3", "1.0.0"),
        ("2.0.0", "2.0.0"),
        ("1.1.0", None),
        ("3.0.0", None),
    ],
)
def test_vsn_negotiation(vsn: str | None, expected: str | None) -> None:
    """A missing vsn means 1.0.0; ~> 1.0.0 and ~> 2.0.0 are served and anything else refused."""
    serializer = negotiate(vsn)
    assert (serializer.vsn if serializer else None) == expected
    assert negotiate("garbage") is None


def test_v1_frames_have_no_join_ref_and_a_null_push_ref() -> None:
    """V1 server frames are exactly topic, event, payload and ref; client join_ref is optional."""
    serializer = V1JSONSerializer()
    push = Frame("realtime:x", "postgres_changes", {"ids": [1]}, ref=None, join_ref="1")
    assert json.loads(serializer.encode(push)) == {
        "topic": "realtime:x",
        "event": "postgres_changes",
        "payload": {"ids": [1]},
        "ref": None,
    }
    decoded = serializer.decode('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}')
    assert decoded == Frame("phoenix", "heartbeat", {}, ref="5", join_ref=None)


def test_v2_frames_are_five_element_arrays() -> None:
    """V2 frames round-trip as [join_ref, ref, topic, event, payload]."""
    serializer = V2JSONSerializer()
    frame = serializer.decode('["1","2","realtime:x","phx_join",{"config":{}}]')
    assert frame == Frame("realtime:x", "phx_join", {"config": {}}, ref="2", join_ref="1")
    assert json.loads(serializer.encode(frame.reply("ok", {}))) == [
        "1",
        "2",
        "realtime:x",
        "phx_reply",
        {"status": "ok", "response": {}},
    ]


@pytest.mark.parametrize(
    ("serializer", "text"),
    [
        (V1JSONSerializer(), "not json"),
        (V1JSONSerializer(), "[1, 2]"),
        (V1JSONSerializer(), '{"topic": "t", "event": "e", "payload": [], "ref": null}'),
        (V2JSONSerializer(), '{"topic": "t"}'),
        (V2JSONSerializer(), '[null, null, "t", "e"]'),
        (V2JSONSerializer(), '[null, {}, "t", "e", {}]'),
    ],
)
def test_malformed_frames_are_rejected(serializer: V1JSONSerializer | V2JSONSerializer, text: str) -> None:
    """Text that is not a frame of the socket's version raises FrameError."""
    with pytest.raises(FrameError):
        serializer.decode(text)
