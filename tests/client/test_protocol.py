"""ClientProtocol's contract with its caller, beyond what the conformance cases pin down."""

from __future__ import annotations

import pytest

from syncd.client import (
    Ack,
    BadServerFrame,
    ClientClosed,
    ClientProtocol,
    EditorError,
    Saved,
    Welcome,
)
from syncd.client.events import Acknowledged, Joined, PresenceChanged, SavedUpTo, as_json
from syncd.client.frames import encode, parse
from syncd.client.protocol import FrameTooLarge
from syncd.core import effects
from syncd.errors import SyncdError


def live_client() -> ClientProtocol:
    client = ClientProtocol("p1", "c1", jitter=lambda: 0.0)
    client.connection_made()
    client.receive_frame(
        {"type": "welcome", "protocol": 1, "project_id": "p1", "epoch": "e", "seq": 0, "session": "s"}
    )
    client.receive_frame(
        {
            "type": "snapshot",
            "epoch": "e",
            "seq": 0,
            "project": {"id": "p1"},
            "scenes": [],
            "clips": [],
            "saved_seq": 0,
        }
    )
    client.take_frames()
    client.take_events()
    return client


def test_a_second_connection_while_one_is_in_use_is_refused() -> None:
    """connection_made() while a connection is in use raises and changes nothing."""
    client = live_client()
    with pytest.raises(RuntimeError, match="still in use"):
        client.connection_made()
    assert (client.phase, client.take_frames()) == ("live", [])


def test_receive_text_returns_the_parsed_frame() -> None:
    """receive_text hands back the frame it handled, or None for text that is not a JSON object."""
    client = live_client()
    assert client.receive_text('{"type":"pong","t":1}') == {"type": "pong", "t": 1}
    assert client.receive_text(b"[1]") is None
    assert client.phase == "closed"


def test_a_mutation_json_cannot_carry_uses_no_mid() -> None:
    """A NaN in a mutation raises ValueError before a mid is taken; nothing is queued."""
    client = live_client()
    with pytest.raises(ValueError, match="JSON"):
        client.patch("clips", "k1", {"duration": float("nan")})
    assert (client.next_mid, client.unacked, client.take_frames()) == (1, [], [])


def test_events_have_a_json_form() -> None:
    """as_json names the event's kind and turns tuples into lists."""
    assert as_json(Acknowledged(3, 9)) == {"type": "acknowledged", "mid": 3, "seq": 9}
    assert as_json(PresenceChanged(({"client_id": "c"},), 1)) == {
        "type": "presence_changed",
        "editors": [{"client_id": "c"}],
        "count": 1,
    }


def test_the_historic_result_names_are_the_event_classes() -> None:
    """Ack, Welcome and Saved are the events, under names that differ from the server's effects."""
    assert (Ack, Welcome, Saved) == (Acknowledged, Joined, SavedUpTo)
    assert {cls.__name__ for cls in (Ack, Welcome, Saved)}.isdisjoint(dir(effects))


def test_client_exceptions_are_syncd_errors() -> None:
    """Every exception the client raises on purpose is in the syncd error tree."""
    assert issubclass(EditorError, SyncdError)
    assert issubclass(ClientClosed, SyncdError)
    assert issubclass(BadServerFrame, SyncdError)
    assert isinstance(ClientClosed(1006, ""), SyncdError)


def test_a_mutation_over_the_frame_limit_uses_no_mid() -> None:
    """A frame of exactly max_frame_bytes goes out; one byte more raises FrameTooLarge and queues nothing."""
    client = live_client()
    client.max_frame_bytes = len(
        encode({"type": "patch", "mid": 1, "table": "clips", "id": "k1", "set": {"prompt": "ab"}})
    )
    with pytest.raises(
        FrameTooLarge, match=r"^the patch frame is \d+ bytes, over the limit of \d+ \(max_frame_bytes\)$"
    ):
        client.patch("clips", "k1", {"prompt": "abc"})
    assert (client.next_mid, client.unacked, client.take_frames()) == (1, [], [])
    sent = client.patch("clips", "k1", {"prompt": "ab"})
    assert (sent["mid"], client.take_frames()) == (1, [sent])


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("{not json", "a frame must be JSON: Expecting property name"),
        ("[1]", "a frame must be a JSON object"),
        ('{"a":' + "[" * 100_000 + "]" * 100_000 + "}", "a frame must be JSON: nested too deep to decode"),
    ],
)
def test_a_message_that_is_not_a_frame_is_a_protocol_violation(message: str, words: str) -> None:
    with pytest.raises(BadServerFrame, match=words):
        parse(message)
