"""Which mutations a project already accepted, so a resent one is acknowledged and applied zero times.

Only the highest accepted mid per client is kept: mids rise strictly per client, so anything at or
below it was seen. The seq to acknowledge a resent mutation with comes from the change history.
"""

from syncd.core.ids import ClientId


class MutationLog:
    """Per client: the highest accepted mid."""

    def __init__(self) -> None:
        self._highest: dict[ClientId, int] = {}

    def seen(self, client_id: ClientId, mid: int) -> bool:
        """True when ``mid`` is not above the highest mid accepted from this client."""
        return mid <= self._highest.get(client_id, -1)

    def accept(self, client_id: ClientId, mid: int) -> None:
        """Remember an accepted mutation (live, or replayed from the journal)."""
        if mid > self._highest.get(client_id, -1):
            self._highest[client_id] = mid
