"""Three instances in cluster mode against the Supabase stand-in: the owner killed, paused, a NATS node lost.

Writers on all three instances edit projects owned by one of them; the counts (acknowledged, lost,
applied twice) come from the database (see `tests.cluster.scenario`).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from syncd.client import EditorClient
from syncd.wire import CLOSE_RESTART
from tests.cluster.conftest import ClientFactory
from tests.cluster.scenario import (
    TTL,
    WRITE_LOG_SQL,
    Writer,
    settle_and_count,
    start_instances,
    took,
    took_counts,
)
from tests.supabase_mode.conftest import SUPABASE_PY_DEPRECATIONS, Stack
from tests.support.nats import NatsCluster
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]

EDIT_FOR = 2.0
"""Seconds of edits before and after each failure."""
NODE_DOWN = 5.0
"""Seconds a NATS node stays down: a stream leader election (about 8 s measured with 2.9) starts in it."""


async def writers_on_all(stack: Stack, urls: dict[str, str], owner: str, projects: int = 2) -> list[Writer]:
    """One writer per instance and project, the owner's first (so the owner takes the projects)."""
    names = [owner, *(n for n in urls if n != owner)]
    writers: list[Writer] = []
    for p in range(projects):
        project_id, scene_ids = await stack.create_project(f"Film {p}", scenes=len(names))
        for name, scene_id in zip(names, scene_ids, strict=True):
            order = [urls[name], *(urls[n] for n in names if n != name)]
            writer = Writer(f"{name}{p}", project_id, scene_id, order)
            await writer.connect()
            writers.append(writer)
    return writers


async def test_owner_killed_another_takes_over_nothing_lost(stack: Stack, nats_cluster: NatsCluster) -> None:
    """kill -9 of the owner under edits on all three: a new owner within the TTL, lost=0, applied_twice=0."""
    await stack.pool.execute(WRITE_LOG_SQL)
    daemons = await start_instances(stack, nats_cluster)
    urls = {name: d.url for name, d in daemons.items()}
    writers = await writers_on_all(stack, urls, owner="a")
    projects = sorted({w.project_id for w in writers})
    for project_id in projects:
        assert daemons["a"].stderr.count(f"took project {project_id}") == 1
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    try:
        await asyncio.sleep(EDIT_FOR)
        before = {p: took_counts(list(daemons.values()), p) for p in projects}
        daemons["a"].kill()
        killed = time.monotonic()
        survivors = [daemons["b"], daemons["c"]]
        taken: dict[str, float] = {}

        async def all_taken() -> bool:
            for p in projects:
                if p not in taken and took(survivors, p, before[p]) is not None:
                    taken[p] = time.monotonic() - killed
            return len(taken) == len(projects)

        await wait_for(all_taken, lambda: f"a new owner of every project; so far {taken}", 4 * TTL)
        await asyncio.sleep(EDIT_FOR)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    counts = await settle_and_count(stack, writers)
    print(f"owner killed: taken over after {sorted(round(t, 2) for t in taken.values())} s; {counts}")
    print(f"reconnects {sum(w.reconnects for w in writers)}")
    for w in writers:
        await w.close()
    assert counts.acknowledged > 0
    assert counts.lost == 0
    assert counts.applied_twice == 0
    # The rules give a takeover at most one TTL after the owner's last renewal, so within a TTL of
    # the kill; the margin is for a loaded machine's scheduling and the log being read.
    assert max(taken.values()) <= TTL + 0.5


async def test_owner_paused_past_its_lease_is_fenced_and_closes_its_editors(
    stack: Stack, nats_cluster: NatsCluster
) -> None:
    """SIGSTOP of the owner, a takeover, SIGCONT: it stops acting, closes its editors with 1012; none lost."""
    await stack.pool.execute(WRITE_LOG_SQL)
    daemons = await start_instances(stack, nats_cluster)
    urls = {name: d.url for name, d in daemons.items()}
    writers = await writers_on_all(stack, urls, owner="a")
    projects = sorted({w.project_id for w in writers})
    watchers = [EditorClient(urls["a"], p, request_timeout=5) for p in projects]
    for watcher in watchers:
        await watcher.connect()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    owner = daemons["a"]
    try:
        await asyncio.sleep(EDIT_FOR)
        survivors = [daemons["b"], daemons["c"]]
        before = {p: took_counts(survivors, p) for p in projects}
        owner.signal(signal.SIGSTOP)
        try:
            await wait_for(
                lambda: all(took(survivors, p, before[p]) for p in projects),
                lambda: "another instance to take every project",
                4 * TTL,
            )
            await asyncio.sleep(EDIT_FOR)
        finally:
            owner.signal(signal.SIGCONT)
        for p in projects:
            await owner.wait_log(f"project {p} lost", timeout=4 * TTL)
        await wait_for(
            lambda: all(w.state == "closed" for w in watchers),
            lambda: f"the paused owner's editors to be closed: {[w.close_code for w in watchers]}",
            4 * TTL,
        )
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    counts = await settle_and_count(stack, writers)
    fenced = owner.stderr.count("stale owner")
    print(f"owner paused: {counts}; its writes refused by the fence after SIGCONT: {fenced}")
    for w in writers:
        await w.close()
    for watcher in watchers:
        await watcher.close()
    assert [w.close_code for w in watchers] == [CLOSE_RESTART] * len(watchers)
    assert counts.acknowledged > 0
    assert counts.lost == 0
    assert counts.applied_twice == 0


async def test_nats_node_killed_and_restarted_during_edits_loses_nothing(
    stack: Stack, nats_cluster: NatsCluster, clients: ClientFactory
) -> None:
    """The journal's leader node killed under edits, then restarted: every acknowledged edit is saved once."""
    await stack.pool.execute(WRITE_LOG_SQL)
    journal: list[str] = []
    daemons = await start_instances(stack, nats_cluster, journal=journal)
    urls = {name: d.url for name, d in daemons.items()}
    writers = await writers_on_all(stack, urls, owner="a", projects=1)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    try:
        await asyncio.sleep(EDIT_FOR)
        info = await (await clients()).jetstream().stream_info(journal[0])
        assert info.cluster is not None
        assert info.cluster.leader is not None
        leader = int(info.cluster.leader.removeprefix("n"))  # the nodes are named n0, n1, n2
        at_kill = sum(len(w.acked) for w in writers)
        nats_cluster.kill(leader)
        try:
            await asyncio.sleep(NODE_DOWN)
        finally:
            await asyncio.to_thread(nats_cluster.restart, leader)
        restarted = sum(len(w.acked) for w in writers)
        await wait_for(
            lambda: sum(len(w.acked) for w in writers) >= restarted + 50,
            lambda: "edits to be acknowledged again after the restart",
            30,
        )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    counts = await settle_and_count(stack, writers)
    print(
        f"NATS node n{leader} killed: {counts}; {counts.acknowledged - at_kill} acknowledged after the kill"
    )
    for w in writers:
        await w.close()
    assert counts.acknowledged > at_kill
    assert counts.lost == 0
    assert counts.applied_twice == 0


async def test_sigterm_releases_the_lease_and_the_edits_move_at_once(
    stack: Stack, nats_cluster: NatsCluster
) -> None:
    """A stopped owner drains, releases its leases and exits 0; another takes the project within a TTL."""
    await stack.pool.execute(WRITE_LOG_SQL)
    daemons = await start_instances(stack, nats_cluster, names=("a", "b"))
    urls = {name: d.url for name, d in daemons.items()}
    writers = await writers_on_all(stack, urls, owner="a", projects=1)
    project_id = writers[0].project_id
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    try:
        await asyncio.sleep(1.0)
        before = took_counts([daemons["b"]], project_id)
        daemons["a"].signal(signal.SIGTERM)
        await daemons["a"].wait_log(f"released project {project_id}", timeout=15)
        released = time.monotonic()
        # Had it not been released, b could take it only a TTL after a's last renewal.
        await wait_for(
            lambda: took([daemons["b"]], project_id, before) is not None,
            lambda: "b to take the released project",
            TTL,
        )
        moved = time.monotonic() - released
        assert await daemons["a"].exit_code(timeout=15) == 0
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    counts = await settle_and_count(stack, writers)
    for w in writers:
        await w.close()
    assert moved < TTL / 2
    assert counts.acknowledged > 0
    assert counts.lost == 0
    assert counts.applied_twice == 0


async def test_owner_forgets_the_relayed_editors_of_a_killed_edge(
    stack: Stack, nats_cluster: NatsCluster
) -> None:
    """kill -9 of an edge instance: its relayed editors leave the owner's presence within two TTLs."""
    daemons = await start_instances(stack, nats_cluster, names=("a", "b"))
    project_id, _ = await stack.create_project(scenes=0)
    local = EditorClient(daemons["a"].url, project_id, request_timeout=5)
    await local.connect()
    relayed = EditorClient(daemons["b"].url, project_id, request_timeout=5)
    await relayed.connect()
    await wait_for(lambda: len(local.editors) == 2, lambda: f"two editors in {local.editors}", 5)
    await relayed.ping()  # the relayed editor's frames go through b to a and back
    daemons["b"].kill()
    await wait_for(lambda: len(local.editors) == 1, lambda: f"one editor in {local.editors}", 2 * TTL + 2)
    assert "instance b is gone" in daemons["a"].stderr
    await local.close()
    await relayed.close()
