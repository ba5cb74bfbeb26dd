"""Server frames of the editor protocol: the only place they are built and serialized.

Each function returns a frame's bytes, serialized once; the same bytes go to every editor that gets
the frame. ``change`` and ``saved`` also have a dict form, because the MQTT bridge publishes them with
a few more fields. docs/protocol.md describes every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd import jsonlib
from syncd.core.effects import Change, PresenceEditor, Snapshot
from syncd.wire import PROTOCOL_VERSION


def encode(frame: Mapping[str, Any]) -> bytes:
    """Serialize a frame compactly as UTF-8 JSON.

    Raises:
        ValueError: a number is not finite; JSON has no NaN or Infinity and browsers refuse them.
        UnicodeEncodeError: a string holds a lone surrogate, which UTF-8 cannot carry.
    """
    return jsonlib.dumps(frame)


def welcome(project_id: str, epoch: str, seq: int, session: str) -> bytes:
    """The answer to ``hello``: where the stream of this project stands."""
    return encode(
        {
            "type": "welcome",
            "protocol": PROTOCOL_VERSION,
            "project_id": project_id,
            "epoch": epoch,
            "seq": seq,
            "session": session,
        }
    )


def ack(mid: int, seq: int) -> bytes:
    """A mutation is durable; ``seq`` is its change (or the stream's position for a no-op).

    One per edit, so written out directly: the same bytes as :func:`encode` makes of the frame (two
    integers need no escaping), without building and encoding a dict.
    """
    return b'{"type":"ack","mid":%d,"seq":%d}' % (mid, seq)


def error(code: str, message: str, mid: int | None = None) -> bytes:
    """Something the editor sent (``mid``, when it had one) or the project cannot go on."""
    return encode({"type": "error", "mid": mid, "code": code, "message": message})


def pong(t: object) -> bytes:
    """The answer to ``ping``, carrying its ``t`` back."""
    return encode({"type": "pong", "t": t})


def change(item: Change) -> dict[str, Any]:
    """A change of the project's stream, as a dict (see :func:`encode`)."""
    frame: dict[str, Any] = {"type": "change", "seq": item.seq, "table": item.table, "op": item.op}
    frame["id"] = item.id
    if item.op == "insert":
        frame["row"] = dict(item.row or {})
    elif item.op == "update":
        frame["set"] = dict(item.set or {})
    frame["origin"] = item.origin
    frame["client_id"] = item.client_id
    frame["mid"] = item.mid
    return frame


def snapshot(item: Snapshot, sides: Mapping[str, list[Any]] | None = None) -> bytes:
    """The whole live view of the project at ``seq``; ``sides`` adds its exports and audio files."""
    frame: dict[str, Any] = {
        "type": "snapshot",
        "epoch": item.epoch,
        "seq": item.seq,
        "project": dict(item.project),
        "scenes": [dict(r) for r in item.scenes],
        "clips": [dict(r) for r in item.clips],
    }
    frame.update(sides or {})
    frame["saved_seq"] = item.saved_seq
    return encode(frame)


def saved(seq: int) -> dict[str, Any]:
    """Every editor change up to ``seq`` is in the database, as a dict (see :func:`encode`)."""
    return {"type": "saved", "seq": seq, "at": now_iso()}


def presence(editors: Iterable[PresenceEditor], count: int | None = None) -> bytes:
    """Who is in the project now; an anonymous editor's ``user_id`` is null.

    Args:
        editors: the editors listed, in the order they arrived.
        count: how many editors there are, when ``editors`` lists only the first of them.
    """
    listed = [{"client_id": e.client_id, "user_id": e.user_id or None} for e in editors]
    return encode({"type": "presence", "editors": listed, "count": len(listed) if count is None else count})


def event(topic: str, data: Any) -> bytes:
    """A notice from another service (the renderer, over MQTT), passed on unchanged."""
    return encode({"type": "event", "topic": topic, "data": data})


def change_message(frame: Mapping[str, Any], epoch: str | None) -> dict[str, Any]:
    """A ``change`` frame as the MQTT bridge publishes it: no ``type``, with ``epoch`` and ``at``."""
    message = {k: v for k, v in frame.items() if k != "type"}
    message["epoch"] = epoch
    message["at"] = now_iso()
    return message


def now_iso() -> str:
    """The wall-clock time as the frames carry it (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
