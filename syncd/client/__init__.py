"""An editor client of the syncd WebSocket protocol, for tests, benchmarks and Python tools.

It speaks protocol version 1 as ``docs/protocol.md`` describes it, on the ``websockets`` asyncio API::

    async with EditorClient("ws://127.0.0.1:8765/v1/editor", project_id) as client:
        ack = await client.patch("scenes", scene_id, {"heading": "Dawn"})
        await client.wait_saved(ack.seq)
        print(client.view.scenes[scene_id]["heading"])

The package is two layers, like the daemon's ``syncd.core`` and its adapters:

- ``protocol``: `ClientProtocol`, the editor's state machine without I/O. It holds the view, the
  epoch and seq (and so gap detection), the next mid, the unanswered mutations and what to resend,
  and decides what each server frame and each lost connection means. Its rules are "Client rules"
  in ``docs/protocol.md``; ``clients/conformance`` holds the cases every client must pass.
  ``view`` (`ProjectView`), ``events`` (what it reports) and ``frames`` (server frame checks) serve it.
- ``connection``: `EditorClient`, asyncio over ``websockets``: it dials, feeds the protocol, writes what
  it returns, and answers the waiting calls (``waiting``). ``errors`` holds what callers catch.

What `EditorClient` does for its caller:

- ``view`` is a copy of the project's live rows, built only from what the server sends (the ``snapshot``
  and every ``change``). A mutation shows in the view when its own ``change`` comes back, not when it
  is sent: the client never guesses the outcome of an edit.
- Every mutation gets the next ``mid`` of this ``client_id``; mids keep rising across reconnects. The
  coroutine methods (``patch`` and the like) return the `Ack`, or raise `EditorError` when the
  server answers that mid with an ``error`` frame. The ``send_*`` methods queue a mutation and return
  its mid at once; ``wait_ack`` waits for the answer later.
- A ``snapshot`` after the opening means the server dropped this connection's backlog (it was not
  reading fast enough): the view is replaced, and unanswered mutations are sent again, since their
  acks may have been in the dropped frames.
- The ``change`` stream is checked for gaps. A ``change`` whose ``seq`` is not the next one means frames
  were missed: the client drops the connection and reconnects, resuming from the last ``seq`` it
  applied (or, with ``resume=False``, asking for a fresh snapshot). Mutations that were sent but not
  acknowledged are sent again with the same mids; the server acknowledges them again without applying
  them twice.
- A connection that the server closes (4401, 4403, 4404, 4408, 4429, 1012, ...) is not reopened by
  itself: waiting calls raise `ClientClosed` with the code and reason, which stay readable in
  ``close_code`` and ``close_reason``; ``reconnect`` opens a new one.
- Every server frame is also kept, as a parsed dict, in a bounded buffer that ``next_frame`` and
  ``frames`` read; ``event`` and ``presence`` frames go to the ``on_event`` callback and to
  ``next_event``.

Use a client from the event loop that created it: it is not thread-safe. Any number of tasks may
call its methods at once.
"""

from __future__ import annotations

from typing import TypeAlias

from syncd.client.connection import ClientState
from syncd.client.editor import EditorClient
from syncd.client.errors import ClientClosed, EditorError
from syncd.client.events import Acknowledged, ClientEvent, Joined, SavedUpTo
from syncd.client.frames import BadServerFrame
from syncd.client.protocol import ClientProtocol
from syncd.client.view import ChildTable, Frame, ProjectView, Row
from syncd.client.waiting import Pong
from syncd.wire import CLOSE_CODES, ERROR_CODES, PROTOCOL_VERSION

__all__ = [
    "CLOSE_CODES",
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "Ack",
    "BadServerFrame",
    "ChildTable",
    "ClientClosed",
    "ClientEvent",
    "ClientProtocol",
    "ClientState",
    "EditorClient",
    "EditorError",
    "Frame",
    "Pong",
    "ProjectView",
    "Row",
    "Saved",
    "Welcome",
]

# The names the client's calls have always returned under; the same classes as the protocol's events.
Ack: TypeAlias = Acknowledged
"""What a mutation call returns: the server made the mutation durable (`Acknowledged`)."""
Welcome: TypeAlias = Joined
"""What ``connect()`` returns: the view is in sync (`Joined`)."""
Saved: TypeAlias = SavedUpTo
"""What ``wait_saved()`` returns (`SavedUpTo`)."""
