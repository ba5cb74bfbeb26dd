"""Who may act under a client id, and which row ids are taken: the rules that keep editors apart.

Client ids are chosen by editors and shown to every editor of a project, so the engine does not trust
them alone:

- while a project is open, a client id is bound to the first user that attached with it; any other
  user is refused, so nobody can send mids under another user's client id (a high mid would make the
  owner's later mids count as seen, acknowledged and never applied);
- a project has at most one connection per client id: a newer one (of the same user) takes it over,
  and the older one is told so and closed, so two connections never interleave one client's mids;
- an insert whose row id another open project holds is refused before its ack, with the words of an
  id taken in its own project, so the refusal tells nothing of where the id lives.
"""

from collections.abc import Iterable

from syncd.core.effects import Disconnect, Error
from syncd.core.ids import ClientId, ConnId, UserId
from syncd.core.project import Key, ProjectState
from syncd.core.validate import Rejection
from syncd.wire import CLOSE_TAKEN_OVER

CLIENT_BOUND_MESSAGE = "this client_id is in use by another user in this project; use a fresh random UUID"

TAKEN_OVER_MESSAGE = "a newer connection took over this client_id; this connection is closed"


def client_refusal(project: ProjectState | None, client_id: ClientId, user_id: UserId) -> Rejection | None:
    """Why ``user_id`` may not act as ``client_id`` in the project (None: it may)."""
    owner = None if project is None else project.owners.get(client_id)
    if owner is None or owner == user_id:
        return None
    return Rejection("forbidden", CLIENT_BOUND_MESSAGE)


def take_over(project: ProjectState, client_id: ClientId) -> list[ConnId]:
    """Remove the project's connections that use ``client_id``; queue their ``conflict`` and close.

    Returns:
        The connections removed (at most one while the engine keeps to one per client id).
    """
    removed: list[ConnId] = []
    for group in (project.editors, project.waiting):
        for conn in [conn for conn, session in group.items() if session.client_id == client_id]:
            del group[conn]
            removed.append(conn)
            project.out.append(Error(project.project_id, conn, None, "conflict", TAKEN_OVER_MESSAGE))
            project.out.append(Disconnect(conn, CLOSE_TAKEN_OVER, "client id taken over"))
    return removed


def taken_rejection(project: ProjectState, others: Iterable[ProjectState], key: Key) -> Rejection | None:
    """A ``conflict`` when another open project holds the row (saved or not), else None.

    Such an insert could never be saved: row ids are unique across projects. An id held by a project
    that is not open is found only by the save (see `ProjectState.write_ok`).
    """
    for other in others:
        if other is not project and (key in other.view or key in other.server):
            table, row_id = key
            return Rejection("conflict", f"row {row_id!r} already exists in table {table!r}")
    return None
