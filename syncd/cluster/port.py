"""What `syncd.host.ProjectHost` asks about owning projects, and the answers of single-process mode.

The host runs the engine the same way in both modes; only these questions differ. One process alone
owns every project for good: it always acts, writes without a fencing token, and has nothing to give
back. In cluster mode `syncd.cluster.node.ClusterNode` answers from the project's lease.

This module imports no NATS code, so single-process mode runs without the ``cluster`` extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from syncd.core.ids import MutationId, ProjectId
from syncd.core.journal import JournalEntry


class Journal(Protocol):
    """Where the host writes acknowledged edits before their ack: the local outbox or the stream."""

    def append_nowait(self, entry: JournalEntry) -> asyncio.Future[None]:
        """Queue an entry; the future completes once it is durable."""

    async def remove(self, project_id: ProjectId, mutation_ids: Sequence[MutationId]) -> None:
        """Drop the entries of mutations that the database now holds."""


class Ownership(Protocol):
    """Whether this process may act for a project now, and what it must do when it may not."""

    def acting(self, project_id: str) -> bool:
        """Whether edits of the project may be taken and acknowledged now."""

    def fence(self, project_id: str) -> int | None:
        """The fencing token the project's write batches carry (None: no fencing)."""

    def stale(self, project_id: str) -> None:
        """The store refused a write of the project by its fence: another instance owns it."""

    def released(self, project_id: str) -> None:
        """The host closed the project (idle, everything saved): its ownership may be given up."""


class SoleOwner:
    """Single-process mode: this process owns every project, always."""

    def acting(self, project_id: str) -> bool:
        """Always."""
        return True

    def fence(self, project_id: str) -> int | None:
        """No fencing: batches carry no token."""
        return None

    def stale(self, project_id: str) -> None:
        """Never happens without a token; nothing to do."""

    def released(self, project_id: str) -> None:
        """Nothing to give up."""
