"""EditorRegistry: which editor connections are in which project, and sending to them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from syncd.adapters.gateway import EditorConnection, fan_out
from syncd.core.budget import ByteBudget


class EditorRegistry:
    """The editor connections of every project, and the timers that close a project left idle.

    A connection is *joined* from the moment it asked for a project and *live* once it was welcomed:
    only live connections get the project's frames, so a connection waiting for its project's load
    gets nothing before its welcome and snapshot (a load emits changes of its own, e.g. of edits
    replayed from the journal).

    Args:
        on_overflow: called with a connection whose backlog was dropped; it must queue a snapshot.
        on_idle: called with a project that has had no editor for ``idle_timeout`` seconds.
        idle_timeout: seconds a project stays open after its last editor left.
        resend_budget: makes the budget of snapshot bytes one connection may be resent.
    """

    def __init__(
        self,
        on_overflow: Callable[[EditorConnection], None],
        on_idle: Callable[[str], None],
        idle_timeout: float,
        resend_budget: Callable[[], ByteBudget],
    ) -> None:
        self._on_overflow = on_overflow
        self._on_idle = on_idle
        self._idle_timeout = idle_timeout
        self._resend_budget = resend_budget
        self._resends: dict[str, ByteBudget] = {}
        self._conns: dict[str, EditorConnection] = {}
        self._joined: dict[str, dict[str, EditorConnection]] = {}
        self._live: dict[str, dict[str, EditorConnection]] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def get(self, conn_id: str) -> EditorConnection | None:
        """The connection of this id, if it is still registered."""
        return self._conns.get(conn_id)

    def join(self, conn: EditorConnection, project_id: str) -> None:
        """Register a connection that asked for ``project_id``; the project is no longer idle."""
        self._cancel_idle(project_id)
        self._conns[conn.conn_id] = conn
        self._joined.setdefault(project_id, {})[conn.conn_id] = conn

    def make_live(self, conn_id: str, project_id: str) -> None:
        """A joined connection was welcomed: from now on it gets the project's frames."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            self._live.setdefault(project_id, {})[conn_id] = conn

    def leave(self, conn: EditorConnection) -> None:
        """Forget a connection; a project left with no editor starts its idle timer."""
        self._conns.pop(conn.conn_id, None)
        self._resends.pop(conn.conn_id, None)
        project_id = conn.project_id or ""
        members = self._joined.get(project_id)
        if members is not None:
            members.pop(conn.conn_id, None)
        self._live.get(project_id, {}).pop(conn.conn_id, None)
        if conn.project_id is not None and not members:
            self._joined.pop(project_id, None)
            self._live.pop(project_id, None)
            self.start_idle(project_id)

    def may_resend(self, conn_id: str, size: int, now: float) -> bool:
        """Whether a snapshot of ``size`` bytes fits the connection's resend budget; if so it is spent."""
        budget = self._resends.get(conn_id)
        if budget is None:
            budget = self._resends[conn_id] = self._resend_budget()
        return budget.spend(size, now)

    def has_editors(self, project_id: str) -> bool:
        """Whether any connection is joined to the project."""
        return bool(self._joined.get(project_id))

    def start_idle(self, project_id: str) -> None:
        """Call ``on_idle`` after the idle timeout unless an editor joins first."""
        self._cancel_idle(project_id)
        loop = asyncio.get_running_loop()
        self._idle[project_id] = loop.call_later(self._idle_timeout, self._idle_fired, project_id)

    def _idle_fired(self, project_id: str) -> None:
        self._idle.pop(project_id, None)
        self._on_idle(project_id)

    def _cancel_idle(self, project_id: str) -> None:
        handle = self._idle.pop(project_id, None)
        if handle is not None:
            handle.cancel()

    def send(self, project_id: str, data: bytes) -> int:
        """Send a frame that a snapshot replaces (a change, ``saved``, an event) to every live editor.

        Returns:
            How many editors got it; the others overflowed and get a snapshot instead.
        """
        members = self._live.get(project_id)
        if not members:
            return 0
        return fan_out(members.values(), data, self._on_overflow)

    def reply_all(self, project_id: str, data: bytes) -> None:
        """Queue a frame that no snapshot replaces (presence, a project-wide error) on every live editor."""
        for conn in self._live.get(project_id, {}).values():
            conn.reply(data)

    def reply(self, conn_id: str, data: bytes) -> None:
        """Queue an answer (an ack, an error, the welcome) for one connection, if it is still here."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.reply(data)

    def close_all(self, project_id: str, code: int, reason: str) -> None:
        """Close every connection of a project, live or still waiting for its welcome."""
        for conn in list(self._joined.get(project_id, {}).values()):
            conn.close(code, reason)

    def close(self, conn_id: str, code: int, reason: str) -> None:
        """Close one connection once what is queued for it is written."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.close(code, reason)
