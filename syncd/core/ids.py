"""Identifiers that the engine passes around.

All are plain strings at run time; the `NewType`s keep them apart for the type checker.
"""

from typing import Final, NewType, TypeAlias

ProjectId = NewType("ProjectId", str)
"""The uuid of a project (the ``projects.id`` column)."""

ClientId = NewType("ClientId", str)
"""The uuid an editor chose for itself; ``mid`` counts up per client."""

ConnId = NewType("ConnId", str)
"""A connection id assigned by the gateway."""

UserId = NewType("UserId", str)
"""The Supabase user of a connection: the token's subject, or :data:`ANONYMOUS`."""

ANONYMOUS: Final = UserId("")
"""The user of an editor without a token (the studio's ``NULL`` user); editors see ``user_id: null``."""

RowId = NewType("RowId", str)
"""The uuid of a row in a synced table."""

Epoch: TypeAlias = str
"""Names one lifetime of a project's change stream; ``seq`` restarts at 0 with each epoch."""

MutationId: TypeAlias = tuple[ClientId, int]
"""``(client_id, mid)``: identifies one editor mutation within its project (journal, batch,
the record of applied mutations all add the project: the same pair in another project is another
mutation)."""
