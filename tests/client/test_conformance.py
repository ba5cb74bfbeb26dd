"""Runs every case of clients/conformance against the Python ClientProtocol (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.client.events import as_json
from syncd.client.protocol import ClientProtocol

CASES_DIR = Path(__file__).resolve().parents[2] / "clients" / "conformance"
DEFAULTS: dict[str, Any] = {
    "project_id": "p1",
    "client_id": "c0ffee00-0000-4000-8000-000000000001",
    "token": None,
    "resume": True,
    "resend_unacked": True,
    "first_mid": 1,
    "jitter": 0.0,
}
CALLS = frozenset(
    {
        "connection_made",
        "connection_lost",
        "connection_failed",
        "disconnect",
        "close",
        "patch",
        "insert",
        "delete",
        "reorder",
        "flush",
        "mutation",
        "ping",
        "resend_unacked",
    }
)
STEP_KEYS = frozenset({"do", "args", "receive", "receive_text", "sent", "events", "returns", "view", "state"})


def load_cases() -> list[Any]:
    """Every case of every file, as pytest params named ``file: case``."""
    params = []
    for path in sorted(CASES_DIR.glob("*.json")):
        for case in json.loads(path.read_text()):
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def make_client(settings: dict[str, Any]) -> ClientProtocol:
    unknown = set(settings) - set(DEFAULTS)
    assert not unknown, f"unknown client settings {sorted(unknown)}"
    options = {**DEFAULTS, **settings}
    jitter = float(options.pop("jitter"))
    return ClientProtocol(
        options.pop("project_id"),
        options.pop("client_id"),
        jitter=lambda: jitter,
        reconnect_initial=0.5,
        reconnect_max=30.0,
        **options,
    )


def state_of(client: ClientProtocol) -> dict[str, Any]:
    point = client.resume_point()
    return {
        "phase": client.phase,
        "epoch": client.epoch,
        "seq": client.seq,
        "saved_seq": client.saved_seq,
        "acked_seq": client.acked_seq,
        "session": client.session,
        "editors": client.editors,
        "next_mid": client.next_mid,
        "unacked": client.unacked,
        "resyncs": client.resyncs,
        "resume_point": list(point) if point is not None else None,
    }


def run_step(client: ClientProtocol, step: dict[str, Any]) -> Any:
    unknown = set(step) - STEP_KEYS
    assert not unknown, f"unknown step keys {sorted(unknown)}"
    inputs = [key for key in ("do", "receive", "receive_text") if key in step]
    assert len(inputs) == 1, f"a step needs exactly one input, got {inputs}"
    if "receive" in step:
        client.receive_frame(step["receive"])
        return None
    if "receive_text" in step:
        client.receive_text(step["receive_text"])
        return None
    assert step["do"] in CALLS, f"unknown call {step['do']!r}"
    return getattr(client, step["do"])(**step.get("args", {}))


def check_step(client: ClientProtocol, step: dict[str, Any], returned: Any, where: str) -> None:
    assert client.take_frames() == step.get("sent", []), f"{where}: frames sent"
    events = [as_json(event) for event in client.take_events()]
    expected = step.get("events", [])
    assert [e["type"] for e in events] == [e["type"] for e in expected], f"{where}: events {events}"
    for got, want in zip(events, expected, strict=True):
        assert {key: got.get(key) for key in want} == want, f"{where}: event {got}"
    if "returns" in step:
        assert returned == step["returns"], f"{where}: returned"
    if "view" in step:
        view = client.view.as_dict()
        assert {key: view[key] for key in step["view"]} == step["view"], f"{where}: view"
    if "state" in step:
        state = state_of(client)
        assert {key: state[key] for key in step["state"]} == step["state"], f"{where}: state"


@pytest.mark.parametrize("case", load_cases())
def test_conformance_case(case: dict[str, Any]) -> None:
    """The Python client sends, reports and holds what the case expects after every step."""
    client = make_client(case.get("client", {}))
    for number, step in enumerate(case["steps"], 1):
        where = f"step {number} ({step.get('do') or next(iter(step))})"
        returned = run_step(client, step)
        check_step(client, step, returned, where)


def test_the_cases_cover_the_rules() -> None:
    """Every event kind and every call of the client appears in some case, so none goes untested."""
    cases = [param.values[0] for param in load_cases()]
    steps = [step for case in cases for step in case["steps"]]
    kinds = {event["type"] for step in steps for event in step.get("events", [])}
    assert kinds >= {
        "joined",
        "view_replaced",
        "change_applied",
        "acknowledged",
        "rejected",
        "server_error",
        "unanswered",
        "saved_up_to",
        "presence_changed",
        "noticed",
        "pong_received",
        "resyncing",
        "violation",
        "disconnected",
    }
    calls = {step["do"] for step in steps if "do" in step}
    assert calls == CALLS
