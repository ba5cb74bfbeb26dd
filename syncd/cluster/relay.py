"""The relay between instances: editors connected to one instance, their project owned by another.

Core NATS subjects (no JetStream: a lost frame is repaired by the protocol, not by the relay):

- ``<prefix>.owner.<project_id>``: an edge instance's frames for the owner of the project. A ``hello``
  is a request (the owner answers whether it took the editor); then each mutation, ``overflow`` (the
  editor's backlog was dropped: send a snapshot) and ``closed``. Headers: ``Syncd-Kind``,
  ``Syncd-Edge`` (the edge instance) and ``Syncd-Conn`` (the connection's id there).
- ``<prefix>.edge.<instance_id>``: the owner's frames for one relayed editor, with ``Syncd-Conn`` and
  ``Syncd-Kind``: ``send`` (a change, ``saved``: a snapshot may replace it), ``reply`` (an ack, an
  error, the welcome, presence), ``now`` (a snapshot) or ``close`` (a code and a reason). A ``send``
  of one frame to several editors of the same edge is one message whose ``Syncd-Conn`` lists their
  ids, comma-separated: a change crosses NATS once per edge instance, not once per relayed editor.

Frames between two instances keep their order (one publisher, one subscriber). A frame lost on the
way is one the editor protocol already survives: a missing change is a gap in ``seq`` (the editor
reconnects and resumes), a missing ack leaves the mutation unacknowledged (the editor resends it after
reconnecting, and the owner's dedupe acknowledges it without applying it twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

KIND = "Syncd-Kind"
EDGE = "Syncd-Edge"
CONN = "Syncd-Conn"


@dataclass(eq=False, slots=True)
class _Message:
    subject: str
    payload: bytes
    headers: dict[str, str]


class Outlet:
    """Publishes in the order asked, from synchronous code: the host's effects cannot await.

    One task sends what is queued; nats-py buffers while it reconnects, and a frame it cannot take
    (its buffer full, the connection closed) is dropped with a log line: see the module docstring.

    Args:
        nc: the connected NATS client.
    """

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.published = 0
        self.merged = 0
        """Sends that joined a waiting message instead of making their own."""
        self.dropped = 0
        self._queue: deque[_Message] = deque()
        self._last: dict[str, _Message] = {}
        """The last message queued for each subject, while it waits."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending."""
        self._task = asyncio.create_task(self._run(), name="syncd.relay.outlet")

    async def stop(self) -> None:
        """Send what is queued (within a second), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._idle.wait()
        log.info(
            "relay: %d messages published, %d sends joined one, %d dropped",
            self.published,
            self.merged,
            self.dropped,
        )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Queue one message."""
        message = _Message(subject, payload, headers)
        self._queue.append(message)
        self._last[subject] = message
        self._idle.clear()
        self._wake.set()

    def send(self, subject: str, payload: bytes, conn: str) -> None:
        """Queue a ``send`` of ``payload`` to one relayed editor of the edge instance at ``subject``.

        A fan-out hands the same ``payload`` object to every editor of a project in one go: when the
        last message still waiting for this subject is a ``send`` of that very object, the editor is
        added to its list instead of making a message of its own. Only the subject's last message
        is extended, so no editor's frames change order.
        """
        last = self._last.get(subject)
        if last is not None and last.payload is payload and last.headers.get(KIND) == "send":
            last.headers[CONN] += f",{conn}"
            self.merged += 1
            return
        self.publish(subject, payload, {KIND: "send", CONN: conn})

    async def _run(self) -> None:
        import nats.errors

        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                message = self._queue.popleft()
                if self._last.get(message.subject) is message:
                    del self._last[message.subject]
                try:
                    await self.nc.publish(message.subject, message.payload, headers=message.headers)
                    self.published += 1
                except nats.errors.Error as exc:
                    self.dropped += 1
                    log.warning("relay: dropped a frame for %s: %r", message.subject, exc)
            self._idle.set()


class RemoteConnection:
    """On the owner, an editor connected to another instance; the host sees an editor connection.

    It has the interface of `syncd.adapters.gateway.EditorConnection` that the host and the
    `syncd.registry.EditorRegistry` use: each frame goes to the edge instance, which queues it on
    the editor's own connection (bounded there, as for any editor).

    Args:
        conn_id: its id on the owner (unique among the owner's connections).
        edge: the instance the editor is connected to.
        edge_conn: the connection's id on that instance.
        subject: the edge instance's subject.
        outlet: where frames are published.
    """

    def __init__(self, conn_id: str, edge: str, edge_conn: str, subject: str, outlet: Outlet) -> None:
        self.conn_id = conn_id
        self.edge = edge
        self.edge_conn = edge_conn
        self.project_id: str | None = None
        self.client_id: str | None = None
        self.user_id: str | None = None
        self.overflows = 0
        self.closing: tuple[int, str] | None = None
        self._subject = subject
        self._outlet = outlet

    def _put(self, kind: str, data: bytes) -> None:
        self._outlet.publish(self._subject, data, {KIND: kind, CONN: self.edge_conn})

    def writable_now(self) -> bool:
        """Never: every frame goes through the relay (see `syncd.adapters.gateway.fan_out`)."""
        return False

    def send(self, data: bytes) -> bool:
        """Relay a frame that a snapshot replaces; the edge handles overflows (it asks for a snapshot)."""
        if self.closing is None:
            self._outlet.send(self._subject, data, self.edge_conn)
        return True

    def reply(self, data: bytes) -> None:
        """Relay a frame that no snapshot replaces."""
        if self.closing is None:
            self._put("reply", data)

    def send_now(self, data: bytes) -> None:
        """Relay a snapshot."""
        if self.closing is None:
            self._put("now", data)

    def close(self, code: int, reason: str) -> None:
        """Ask the edge to close the editor's connection once what was relayed before is written."""
        if self.closing is None:
            self.closing = (code, reason)
            self._put("close", json.dumps({"code": code, "reason": reason}).encode())

    @property
    def queued(self) -> tuple[int, int]:
        """Nothing waits here; the edge queues."""
        return 0, 0


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """A header's value, "" when absent."""
    return (headers or {}).get(name, "")
