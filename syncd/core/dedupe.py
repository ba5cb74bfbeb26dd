"""Which mutations a project already accepted, so a resent one is acknowledged and applied zero times.

Only the highest accepted mid per client is kept: mids rise strictly per client, so anything at or
below it was seen. The seq to acknowledge a resent mutation with comes from the change history.

Each open project has its own log, so a mutation is named by ``(project, client_id, mid)``, as in the
journal and the database: client ids are public (every editor of a project sees them), and a client
id's mids in one project say nothing about another. After a restart the log starts from the journal's
entries and from the highest mid per client the database recorded for the project
(``ProjectRows.applied``), so a mutation resent after a restart is acknowledged, not applied again.
"""

from syncd.core.ids import ClientId


class MutationLog:
    """Per client of one project: the highest accepted mid."""

    def __init__(self) -> None:
        self._highest: dict[ClientId, int] = {}

    def seen(self, client_id: ClientId, mid: int) -> bool:
        """True when ``mid`` is not above the highest mid accepted from this client."""
        return mid <= self._highest.get(client_id, -1)

    def accept(self, client_id: ClientId, mid: int) -> None:
        """Remember an accepted mutation (live, replayed from the journal, or recorded by the database)."""
        if mid > self._highest.get(client_id, -1):
            self._highest[client_id] = mid
