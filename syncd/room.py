"""Edits that wait for room on the state directory's disk before the engine takes them.

An edit is applied and passed on to the other editors before its journal commit ends, so a commit that
fails (the disk is full) leaves an edit that everyone saw and nothing holds: the daemon then stops, and
the editors send it again to the next start. On a disk that stays full that becomes a loop, which
systemd ends after five tries, with the studio down even once the disk has room again. So the daemon
looks at the free space first: below ``daemon.edit_reserve``, an editor's edit is not applied, not
acknowledged and not refused. It waits here, in order, and the editor keeps it (unacknowledged, so its
page asks before it is left) until there is room; a service's write is refused with ``unavailable``
at once, since its caller waits with a timeout and may send it again.

:class:`EditRoom` decides, given the time and the free space; :class:`RoomWait` carries that out for
the host.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syncd import outbound
from syncd.core.ids import ConnId
from syncd.core.inputs import Mutation
from syncd.service import is_service
from syncd.wire import CLOSE_TRY_LATER

if TYPE_CHECKING:
    from syncd.host import ProjectHost

log = logging.getLogger(__name__)

LOOK_EVERY = 1.0
"""Seconds between two looks at the free space: one ``statvfs`` a second, not one per edit."""

MAX_WAITING = 10_000
"""Edits that may wait at once; an editor whose edit would pass it is disconnected (it keeps its edits)."""

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Waiting:
    """An editor's edits, held until there is room."""

    conn: ConnId
    project_id: str
    mutations: Sequence[Mutation]


class EditRoom:
    """Whether the state directory has room for the journal, and the edits that wait for it.

    Args:
        free: free bytes on the state directory's file system (NaN when unknown: taken as room).
        reserve: bytes that must stay free for an edit to be taken; 0 takes every edit.
    """

    def __init__(self, free: Callable[[], float], reserve: int) -> None:
        self._free = free
        self.reserve = reserve
        self.waiting: list[Waiting] = []
        self.count = 0
        """Mutations in :attr:`waiting`."""
        self._told: set[ConnId] = set()  # editors told that their edits wait, until there is room again
        self._looked_at = -math.inf
        self._room = True
        self.last_free = math.nan

    def admits(self, now: float) -> bool:
        """Whether an edit may go to the engine now: none waits, and there is room."""
        return not self.waiting and self._has_room(now)

    def hold(self, conn: ConnId, project_id: str, mutations: Sequence[Mutation]) -> bool:
        """Keep the edits until :meth:`release`; False when as many wait as may (they are not kept)."""
        if self.count + len(mutations) > MAX_WAITING:
            return False
        self.count += len(mutations)
        self.waiting.append(Waiting(conn, project_id, mutations))
        return True

    def drop(self, conn: ConnId) -> None:
        """Forget a closed connection's edits: it sends them again once it is back."""
        self.waiting = [w for w in self.waiting if w.conn != conn]
        self.count = sum(len(w.mutations) for w in self.waiting)
        self._told.discard(conn)

    def release(self, now: float) -> list[Waiting] | None:
        """The edits that waited, in order, when a look finds room (they wait no more); else None."""
        if not self._has_room(now):
            return None
        released, self.waiting, self.count = self.waiting, [], 0
        self._told.clear()
        return released

    def to_tell(self, conn: ConnId) -> bool:
        """Whether the editor is to be told now that its edits wait: once until there is room again."""
        if conn in self._told:
            return False
        self._told.add(conn)
        return True

    def message(self) -> str:
        """Why edits wait, safe to show a user."""
        free = "unknown" if math.isnan(self.last_free) else f"{self.last_free / MIB:.1f} MiB"
        keep = f"{self.reserve / MIB:.0f} MiB"
        return f"the daemon's disk is full ({free} free, under the {keep} it keeps for its journal)"

    def _has_room(self, now: float) -> bool:
        if self.reserve == 0:
            return True
        if now - self._looked_at >= LOOK_EVERY:
            self._looked_at = now
            self.last_free = self._free()
            self._room = math.isnan(self.last_free) or self.last_free >= self.reserve
        return self._room


class RoomWait:
    """The host's side of :class:`EditRoom`: holds edits, tells their editors, lets them go on.

    Args:
        host: the project host, whose editors and services are told.
        room: what decides.
        apply: feeds edits to the engine once there is room (the host's own path for them).
        where: the state directory, for the log.
    """

    def __init__(
        self,
        host: ProjectHost,
        room: EditRoom,
        apply: Callable[[ConnId, str, Sequence[Mutation], float], None],
        where: Path,
    ) -> None:
        self._host = host
        self.room = room
        self._apply = apply
        self._where = where
        self._retry: asyncio.TimerHandle | None = None

    @property
    def count(self) -> int:
        """Edits that wait."""
        return self.room.count

    def admits(self, now: float) -> bool:
        """Whether an edit may go to the engine now (see :meth:`EditRoom.admits`)."""
        return self.room.admits(now)

    def hold(self, conn: ConnId, project_id: str, mutations: Sequence[Mutation]) -> None:
        """Keep an editor's edits until there is room, or refuse a service's."""
        room, host = self.room, self._host
        if is_service(conn):
            for mutation in mutations:  # these only: an earlier write of the session may be in flight
                host.service.refused(conn, mutation.mid, "unavailable", f"{room.message()}; try again later")
            return
        if not room.waiting:
            log.warning("%s on %s: editors' edits wait until there is room", room.message(), self._where)
        if not room.hold(conn, project_id, mutations):
            host.editors.close(conn, CLOSE_TRY_LATER, f"{room.message()}; too many edits wait")
            return
        if room.to_tell(conn):
            message = f"{room.message()}: your edits wait in this editor until there is room"
            host.editors.reply(conn, outbound.error("unavailable", message))
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(LOOK_EVERY, self._again)

    def drop(self, conn: ConnId) -> None:
        """A connection closed: forget its edits (see :meth:`EditRoom.drop`)."""
        self.room.drop(conn)

    def cancel(self) -> None:
        """Stop looking for room (the daemon stops; the editors send their edits to the next start)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _again(self) -> None:
        self._retry = None
        if not self.room.waiting:
            return  # their editors left: the next edit looks for room itself
        released = self.room.release(self._host.now())
        if released is None:
            self._retry = asyncio.get_running_loop().call_later(LOOK_EVERY, self._again)
            return
        log.info("there is room again: %d waiting edits go on", sum(len(w.mutations) for w in released))
        for waiting in released:
            self._apply(waiting.conn, waiting.project_id, waiting.mutations, self._host.now())
