"""ClusterRouter's lease watch, against a node whose answers are scripted (the watch over real NATS is
in test_failover.py)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from syncd.cluster.router import ClusterRouter, _Relayed
from tests.support.waiting import ends_cancelled

if TYPE_CHECKING:
    from syncd.adapters.gateway import EditorConnection
    from syncd.cluster.node import ClusterNode

PROJECT = "0f000000-0000-4000-8000-0000000000aa"


class AnswerWithTheCancel:
    """A node (and its leases) whose ownership check is answered in the same moment its caller is
    cancelled: on Python 3.11, ``asyncio.wait_for`` (which nats-py awaits every request with) then
    returns the answer and drops the cancellation. A check that is not cancelled never ends."""

    def __init__(self) -> None:
        self.leases = self
        self.checks = 0
        self.started = asyncio.Event()

    def pause(self, project_id: str) -> float:
        return 0.0

    def last_seen(self, project_id: str) -> SimpleNamespace:
        return SimpleNamespace(owner="owner-b")

    def forget(self, project_id: str) -> None:
        pass

    async def own(self, project_id: str) -> bool:
        self.checks += 1
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):  # the answer came with the cancellation
            await asyncio.sleep(3600)
        return False


async def test_a_watch_told_to_stop_stops_even_when_the_answer_swallows_the_cancellation() -> None:
    """A watch that went on after its stop would close relayed editors, or take the project, for an
    instance that let it go (the last editor left, or the daemon is stopping)."""
    node = AnswerWithTheCancel()
    router = ClusterRouter(cast("ClusterNode", node))
    router._relayed["c1"] = _Relayed(cast("EditorConnection", None), PROJECT, "owner-b")
    watch = asyncio.create_task(router._watch(PROJECT))
    await node.started.wait()
    assert await ends_cancelled(watch), "the watch went on checking the owner"
    assert node.checks == 1
