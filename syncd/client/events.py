"""What `ClientProtocol.take_events` reports: frozen records, in the order things happened.

The names differ from the server core's effects on purpose (``syncd.core.effects`` has ``Welcome``,
``Ack``, ``Saved``...): these are the editor's side. `as_json` gives each event the language-neutral
form that the conformance cases in ``clients/conformance`` use: ``{"type": kind, ...fields}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "Acknowledged",
    "ChangeApplied",
    "ClientEvent",
    "Disconnected",
    "Joined",
    "Noticed",
    "PongReceived",
    "PresenceChanged",
    "Rejected",
    "Resyncing",
    "SavedUpTo",
    "ServerError",
    "Unanswered",
    "ViewReplaced",
    "Violation",
    "as_json",
]


@dataclass(frozen=True, slots=True)
class Joined:
    """The view is in sync on this connection; mutations flow from now on.

    Args:
        project_id: the project that was opened.
        epoch: the project's stream epoch; a new one means the daemon restarted and seqs begin again.
        seq: the project's latest seq when the server said welcome.
        session: the server's id of this connection (for its logs).
        resumed: True when the missed changes were replayed, False when a snapshot replaced the view.
    """

    kind: ClassVar[str] = "joined"
    project_id: str
    epoch: str
    seq: int
    session: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class ViewReplaced:
    """A ``snapshot`` replaced the whole view; it is now at ``seq`` of ``epoch``."""

    kind: ClassVar[str] = "view_replaced"
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class ChangeApplied:
    """The ``change`` with this seq is applied to the view."""

    kind: ClassVar[str] = "change_applied"
    seq: int
    table: str
    op: str
    id: str


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The server made mutation ``mid`` durable; its changes have this seq."""

    kind: ClassVar[str] = "acknowledged"
    mid: int
    seq: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The server refused mutation ``mid`` (an ``error`` frame naming it); it changed nothing."""

    kind: ClassVar[str] = "rejected"
    mid: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` frame that answers no waiting mutation (its mid is null or already answered)."""

    kind: ClassVar[str] = "server_error"
    mid: int | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Unanswered:
    """Mutation ``mid`` went out on a lost connection and is not sent again (resending is off).

    Whether the server applied it is unknown; its ``change`` would show it.
    """

    kind: ClassVar[str] = "unanswered"
    mid: int


@dataclass(frozen=True, slots=True)
class SavedUpTo:
    """Every change up to ``seq`` is in the database (a ``saved`` frame).

    Args:
        seq: the highest seq that is saved.
        at: the server's ISO-8601 time of the save; None when the number came from a snapshot's
            ``saved_seq`` (``EditorClient.wait_saved`` returns such a value).
    """

    kind: ClassVar[str] = "saved_up_to"
    seq: int
    at: str | None


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """Who has the project open (a ``presence`` frame)."""

    kind: ClassVar[str] = "presence_changed"
    editors: tuple[dict[str, Any], ...]
    count: int
    """How many editors have it open; ``editors`` lists the first of them when there are many."""


@dataclass(frozen=True, slots=True)
class Noticed:
    """An ``event`` frame: a transient notice from another service, such as render progress."""

    kind: ClassVar[str] = "noticed"
    topic: str
    data: Any


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The ``pong`` for a ``ping`` with this ``t`` came back."""

    kind: ClassVar[str] = "pong_received"
    t: Any


@dataclass(frozen=True, slots=True)
class Resyncing:
    """The stream does not fit the view: close this connection (code 1000) and open a new one now.

    Args:
        reason: what did not fit, for logs.
        resume: whether the next ``hello`` resumes (after a gap) or asks for a snapshot (the view
            diverged, or a resumed stream did not line up).
    """

    kind: ClassVar[str] = "resyncing"
    reason: str
    resume: bool


@dataclass(frozen=True, slots=True)
class Violation:
    """The server broke the protocol: close the connection with 1002 and ``reason``; do not reconnect."""

    kind: ClassVar[str] = "violation"
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended without the client asking.

    Args:
        code: the WebSocket close code (1006 when it dropped without a close frame).
        reason: the close reason, possibly empty.
        final: True when reconnecting by itself would not help (4401, 4403, 4404, ...).
        retry_at: when to connect again (on the caller's clock), or None when ``final``.
    """

    kind: ClassVar[str] = "disconnected"
    code: int
    reason: str
    final: bool
    retry_at: float | None


ClientEvent: TypeAlias = (
    Joined
    | ViewReplaced
    | ChangeApplied
    | Acknowledged
    | Rejected
    | ServerError
    | Unanswered
    | SavedUpTo
    | PresenceChanged
    | Noticed
    | PongReceived
    | Resyncing
    | Violation
    | Disconnected
)
"""Every event the client protocol reports."""


def as_json(event: ClientEvent) -> dict[str, Any]:
    """Return ``event`` as ``{"type": kind, field: value, ...}`` (tuples become lists)."""
    body: dict[str, Any] = {"type": event.kind}
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        body[item.name] = list(value) if isinstance(value, tuple) else value
    return body
