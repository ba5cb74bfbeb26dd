"""The message a relayed HTTP call travels in between instances (`syncd.api.relay`)."""

from __future__ import annotations

import json

import pytest

from syncd.api.access import SERVICE, Caller
from syncd.api.relay import ProjectCall, decode_call, encode_call
from syncd.errors import EditRejected


def test_a_call_and_its_caller_come_back_as_they_left() -> None:
    call = ProjectCall(
        "update_clip",
        {"pid": "p1", "cid": "c1"},
        {"save": "now"},
        {"prompt": "déjà vu", "n": [1, 2.5, None]},
    )
    for caller in (SERVICE, Caller(False, "u1", False), Caller(False, None, True)):
        assert decode_call(encode_call(call, caller)) == (call, caller)


def message(**changed: object) -> bytes:
    """A relayed call's message, well formed but for ``changed`` (a field given as ``...`` is left out)."""
    fields: dict[str, object] = {
        "route": "load_project",
        "params": {},
        "query": {},
        "body": {},
        "caller": {"service": True, "user_id": None, "anonymous": False},
    }
    fields.update(changed)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"not json", "could not be read"),
        (b"[]", "could not be read"),
        (message(caller=...), "'caller'"),
        (message(route=7), "must be text"),
        (message(params={"pid": 1}), "must be text"),
        (message(caller={"service": False, "user_id": 5, "anonymous": False}), "user_id must be text"),
    ],
)
def test_a_message_that_is_not_a_call_is_refused_with_what_is_wrong(message: bytes, why: str) -> None:
    with pytest.raises(EditRejected) as refused:
        decode_call(message)
    assert refused.value.code == "bad_request"
    assert why in refused.value.message


def test_only_true_makes_a_service() -> None:
    """A damaged flag must not grant the service's rights."""
    message = encode_call(ProjectCall("load_project", {"pid": "p"}, {}, {}), SERVICE)
    damaged = message.replace(b'"service":true', b'"service":"yes"')
    assert decode_call(damaged)[1].service is False


@pytest.mark.parametrize(
    ("query", "save"), [({}, False), ({"save": "now"}, True), ({"save": "debounce"}, False)]
)
def test_save_reads_the_query(query: dict[str, str], save: bool) -> None:
    assert ProjectCall("update_project", {}, query, {}).save() is save


def test_save_refuses_other_values() -> None:
    with pytest.raises(EditRejected, match="save: 'now' or 'debounce'"):
        ProjectCall("update_project", {}, {"save": "later"}, {}).save()
