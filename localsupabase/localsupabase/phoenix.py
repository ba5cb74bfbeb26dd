"""Phoenix channel frames and the two JSON serializers that Supabase Realtime speaks.

A socket picks its serializer with the ``vsn`` query parameter: ``1.0.0`` (the default, and the only
one realtime-py uses) exchanges JSON objects, ``2.0.0`` exchanges JSON arrays
``[join_ref, ref, topic, event, payload]``. Server frames in V1 never carry ``join_ref``, and pushes
carry ``"ref": null``; realtime-py drops any frame whose ``ref`` key is missing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

PHOENIX_TOPIC = "phoenix"
"""The topic of socket-level frames such as heartbeats."""

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


class FrameError(ValueError):
    """A client frame that is not valid JSON or lacks the fields of a Phoenix message."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One Phoenix message in either direction.

    Attributes:
        topic: The channel topic, e.g. ``realtime:db-sync``, or ``phoenix`` for heartbeats.
        event: The event name, e.g. ``phx_join``, ``phx_reply``, ``postgres_changes``.
        payload: The JSON object carried by the message.
        ref: The client's request counter; ``None`` on server pushes.
        join_ref: The ref of the join that opened the channel; V1 server frames never show it.
    """

    topic: str
    event: str
    payload: dict[str, Any]
    ref: str | None = None
    join_ref: str | None = None

    def reply(self, status: str, response: dict[str, Any]) -> Frame:
        """Return the ``phx_reply`` answering this frame with ``status`` (``ok`` or ``error``)."""
        return Frame(
            topic=self.topic,
            event="phx_reply",
            payload={"status": status, "response": response},
            ref=self.ref,
            join_ref=self.join_ref,
        )


class Serializer(Protocol):
    """Turns frames into websocket text and back, for one protocol version."""

    vsn: str

    def decode(self, text: str) -> Frame:
        """Parse one text message from the client.

        Raises:
            FrameError: the text is not a message of this protocol version.
        """
        ...

    def encode(self, frame: Frame) -> str:
        """Render one server frame as websocket text."""
        ...


def _optional_ref(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FrameError(f"{name} must be a string or null")


def _checked(topic: Any, event: Any, payload: Any, ref: Any, join_ref: Any) -> Frame:
    if not isinstance(topic, str) or not isinstance(event, str):
        raise FrameError("topic and event must be strings")
    if not isinstance(payload, dict):
        raise FrameError("payload must be an object")
    return Frame(topic, event, payload, _optional_ref(ref, "ref"), _optional_ref(join_ref, "join_ref"))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"not JSON: {exc.msg}") from exc


class V1JSONSerializer:
    """Phoenix's V1 serializer: ``{topic, event, payload, ref[, join_ref]}`` objects."""

    vsn = "1.0.0"

    def decode(self, text: str) -> Frame:
        """Parse a client object; ``join_ref`` may be absent (older clients)."""
        data = _loads(text)
        if not isinstance(data, dict):
            raise FrameError("a V1 message is a JSON object")
        return _checked(
            data.get("topic"), data.get("event"), data.get("payload"), data.get("ref"), data.get("join_ref")
        )

    def encode(self, frame: Frame) -> str:
        """Render exactly ``topic, event, payload, ref``: the V1 server format has no ``join_ref``."""
        return json.dumps(
            {"topic": frame.topic, "event": frame.event, "payload": frame.payload, "ref": frame.ref},
            ensure_ascii=False,
        )


class V2JSONSerializer:
    """Supabase's V2 serializer for text frames: ``[join_ref, ref, topic, event, payload]`` arrays."""

    vsn = "2.0.0"

    def decode(self, text: str) -> Frame:
        """Parse a client array of exactly five elements."""
        data = _loads(text)
        if not isinstance(data, list) or len(data) != 5:
            raise FrameError("a V2 message is an array of five elements")
        join_ref, ref, topic, event, payload = data
        return _checked(topic, event, payload, ref, join_ref)

    def encode(self, frame: Frame) -> str:
        """Render the five-element array, ``join_ref`` included."""
        return json.dumps(
            [frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload], ensure_ascii=False
        )


def negotiate(vsn: str | None) -> Serializer | None:
    """Return the serializer for the client's ``vsn`` query value, or ``None`` to refuse the socket.

    A missing ``vsn`` means 1.0.0. Phoenix matches ``~> 1.0.0`` and ``~> 2.0.0``, that is the same major
    and minor version with any patch level.
    """
    if vsn is None:
        return V1JSONSerializer()
    match = _SEMVER.match(vsn)
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    if (major, minor) == (1, 0):
        return V1JSONSerializer()
    if (major, minor) == (2, 0):
        return V2JSONSerializer()
    return None
