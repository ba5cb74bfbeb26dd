"""PresenceGate: who has a project open, told to its editors at most once per interval.

Every join and leave changes who is there, and a ``Presence`` lists everyone: sent to every editor on
each change, a crowd of n joining costs n² entries to each of them. The gate sends one to everyone at
once when the last went out at least ``interval`` ago, else one at the end of the interval for all the
changes within it; a newcomer gets its own at once meanwhile. A ``Presence`` lists at most ``limit``
editors (the first to arrive) and then says how many there are.
"""

from collections.abc import Mapping
from itertools import islice

from syncd.core.effects import Presence, PresenceEditor
from syncd.core.ids import ConnId, ProjectId
from syncd.core.project import ProjectState


class PresenceGate:
    """When each open project's editors are told who is there.

    Args:
        interval: at least this many seconds between two ``Presence`` of a project to all its editors.
        limit: at most this many editors listed in a ``Presence``.
    """

    def __init__(self, interval: float, limit: int) -> None:
        self._interval = interval
        self._limit = limit
        self._due: dict[ProjectId, float] = {}

    def announce(self, project: ProjectState, now: float, newcomer: ConnId | None = None) -> None:
        """Who is here changed: tell everyone now or at the interval's end, and a newcomer now."""
        due = project.presence_sent + self._interval
        if now >= due:
            self._due.pop(project.project_id, None)
            project.presence_sent = now
            project.out.append(self._presence(project, None))
            return
        self._due[project.project_id] = due
        if newcomer is not None:
            project.out.append(self._presence(project, newcomer))

    def next_deadline(self) -> float | None:
        """When `fire` must be called next (None: nothing waits)."""
        return min(self._due.values()) if self._due else None

    def fire(self, projects: Mapping[ProjectId, ProjectState], now: float) -> None:
        """Send the delayed ``Presence`` of every project whose interval is over at ``now``."""
        for project_id in [project_id for project_id, at in self._due.items() if at <= now]:
            self.announce(projects[project_id], now)

    def discard(self, project_id: ProjectId) -> None:
        """Forget a project's delayed ``Presence`` (it closed)."""
        self._due.pop(project_id, None)

    def _presence(self, project: ProjectState, conn: ConnId | None) -> Presence:
        sessions = islice(project.editors.values(), self._limit)
        editors = tuple(PresenceEditor(s.client_id, s.user_id) for s in sessions)
        count = len(project.editors)
        return Presence(project.project_id, editors, None if count == len(editors) else count, conn)
