"""How long each project's edits have waited to be saved, for ``/metrics`` and the inspector."""

from __future__ import annotations

from collections.abc import Callable


class UnsavedAges:
    """When each project's run of unsaved edits began.

    A run begins with an edit that finds the project fully saved, and ends with a write that leaves it
    so. While a project is never fully saved (continuous editing across flushes) its age is an upper
    bound, never an underestimate.

    Args:
        unsaved: how many of a project's mutations are not in the database yet.
    """

    def __init__(self, unsaved: Callable[[str], int]) -> None:
        self._unsaved = unsaved
        self._since: dict[str, float] = {}

    def began(self, project_id: str, now: float) -> None:
        """The project has unsaved edits of unknown age (replayed from a journal): count from ``now``."""
        self._since[project_id] = now

    def fresh(self, project_id: str) -> bool:
        """Whether an edit now would begin a run; ask before the edit, then tell :meth:`edited`."""
        # A run only begins in edited() or began(), so an untracked project has nothing unsaved; only a
        # tracked one needs a look, in case its run ended unnoticed: one status read per edit, not two.
        return project_id not in self._since or self._unsaved(project_id) == 0

    def edited(self, project_id: str, fresh: bool, now: float) -> None:
        """Edits were taken at ``now``; ``fresh``: what :meth:`fresh` said before them."""
        if fresh and self._unsaved(project_id) > 0:
            self._since[project_id] = now

    def written(self, project_id: str) -> None:
        """A write of the project ended: its run ends if nothing is left unsaved."""
        if self._unsaved(project_id) == 0:
            self._since.pop(project_id, None)

    def forget(self, project_id: str) -> None:
        """The project was let go with its edits (another instance owns it now)."""
        self._since.pop(project_id, None)

    def oldest(self, now: float) -> float:
        """Seconds since the oldest unsaved edit of any project arrived (0 when everything is saved)."""
        starts = [t for p, t in self._since.items() if self._unsaved(p) > 0]
        return max(0.0, now - min(starts)) if starts else 0.0

    def age(self, project_id: str, now: float) -> float:
        """Seconds since the project's oldest unsaved edit arrived (0 when everything is saved)."""
        since = self._since.get(project_id)
        return 0.0 if since is None or self._unsaved(project_id) == 0 else max(0.0, now - since)
