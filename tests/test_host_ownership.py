"""The project host's Ownership port, in-process on the embedded store: what cluster mode relies on.

A `Lease` stands in for the cluster node's answers (whether this process acts for a project, its
fencing token); the store's fence is the real one (`syncd/adapters/local.py`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from syncd.adapters.local import LocalBackend
from syncd.cluster.port import SoleOwner
from syncd.core.ids import ProjectId
from syncd.errors import EditRejected
from syncd.supervisor import EXIT_OK, Supervisor
from tests.test_supervisor import WAIT, body_in_store, join, make_project, patch, settings, started, until_ack


class Lease:
    """The answers of a cluster node about one project, set by the test."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.holds = True
        self.stale_projects: list[str] = []
        self.released_projects: list[str] = []
        self.refused = asyncio.Event()

    def acting(self, project_id: str) -> bool:
        return self.holds

    def fence(self, project_id: str) -> int | None:
        return self.token

    def stale(self, project_id: str) -> None:
        self.stale_projects.append(project_id)
        self.refused.set()

    def released(self, project_id: str) -> None:
        self.released_projects.append(project_id)


def test_single_process_mode_owns_every_project_for_good() -> None:
    """SoleOwner: always acting, no fencing token."""
    owner = SoleOwner()
    assert owner.acting("p")
    assert owner.fence("p") is None
    owner.stale("p")
    owner.released("p")
    assert owner.acting("p")


async def test_edit_without_the_lease_is_neither_applied_nor_acknowledged(tmp_path: Path) -> None:
    """A lapsed term: the editor is closed with 1012, nothing is pending, the store keeps its value."""
    state = tmp_path / "state"
    project_id, scene = await make_project(state)
    sup = Supervisor(settings(state))
    task = await started(sup)
    lease = Lease(token=3)
    sup.host.ownership = lease
    ws = await join(sup, project_id)
    await patch(ws, 1, scene, "with the lease")
    await until_ack(ws, 1)
    lease.holds = False
    await patch(ws, 2, scene, "without it")
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    assert ws.close_code == 1012
    assert sup.host.engine.pending_count() == 1  # only the first edit
    lease.holds = True
    sup.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK
    assert await body_in_store(state, project_id) == "with the lease"


async def test_write_carries_the_fence_and_a_refusal_gives_the_project_up(tmp_path: Path) -> None:
    """Batches carry the token; a store that saw a higher one refuses (``stale``); ``abandon`` drops all."""
    state = tmp_path / "state"
    project_id, scene = await make_project(state)
    async with LocalBackend(state / "store.db") as store:
        await store.apply_encoded({"project_id": project_id, "ops": [], "mutations": [], "fence": 7})
    sup = Supervisor(settings(state))
    task = await started(sup)
    lease = Lease(token=5)  # below the store's 7: another instance took the project over
    sup.host.ownership = lease
    ws = await join(sup, project_id)
    await patch(ws, 1, scene, "stale")
    await until_ack(ws, 1)
    await ws.send(json.dumps({"type": "flush", "mid": 2}))  # save now
    async with asyncio.timeout(WAIT):
        await lease.refused.wait()
    assert lease.stale_projects == [project_id]
    sup.host.abandon(project_id, "another instance owns the project now")
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    assert ws.close_code == 1012
    assert sup.host.engine.status(ProjectId(project_id)) is None
    assert sup.host.engine.pending_count() == 0
    sup.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK
    assert await body_in_store(state, project_id) != "stale"


async def test_service_call_without_the_lease_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """An HTTP/service write to a project this instance does not act for: ``unavailable``, nothing pending."""
    state = tmp_path / "state"
    project_id, _ = await make_project(state)
    sup = Supervisor(settings(state))
    task = await started(sup)
    lease = Lease(token=3)
    lease.holds = False
    sup.host.ownership = lease
    with pytest.raises(EditRejected, match="served by another syncd instance") as refused:
        await sup.host.service.view(ProjectId(project_id))
    assert refused.value.code == "unavailable"
    assert ProjectId(project_id) not in sup.host.engine.open_projects()
    lease.holds = True
    sup.request_stop()
    assert await asyncio.wait_for(task, WAIT) == EXIT_OK
