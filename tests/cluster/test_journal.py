"""The replicated journal (syncd/cluster/journal.py) on a real three-node NATS JetStream cluster."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import pytest

from syncd.cluster.journal import ReplicatedJournal, _in_writer_order
from syncd.cluster.node import JOURNAL_APPEND_TIMEOUT, _JournalPort
from syncd.core.ids import ClientId, ProjectId, RowId
from syncd.core.inputs import Delete, Insert, Patch
from syncd.core.journal import JournalEntry, Reordered
from syncd.errors import JournalError
from tests.cluster.conftest import ClientFactory, unique
from tests.support.nats import NatsCluster

P = ProjectId("0b6c1f2e-0000-4000-8000-00000000000a")
Q = ProjectId("0b6c1f2e-0000-4000-8000-00000000000b")
A = ClientId("client-a")
B = ClientId("client-b")


def patch(mid: int, project: ProjectId = P, client: ClientId = A) -> JournalEntry:
    return JournalEntry(project, client, mid, Patch(mid, "scenes", RowId("s-1"), {"heading": f"h{mid}"}))


def journal(
    client: object, stream: str, writer: str = "w", append_timeout: float = 10.0
) -> ReplicatedJournal:
    js = client.jetstream()  # type: ignore[attr-defined]
    return ReplicatedJournal(
        js, stream=stream, subject_prefix=stream.lower(), writer_id=writer, append_timeout=append_timeout
    )


def test_a_writers_entries_are_put_back_in_its_order() -> None:
    """A re-sent entry that landed after later ones goes back to its place; each keeps its own sequence."""
    e = [patch(i) for i in range(6)]
    decoded = [
        (10, "x", 2, e[2]),
        (11, "x", 3, e[3]),
        (12, "x", 1, e[1]),
        (20, "y", 1, e[4]),
        (21, "x", 4, e[5]),
    ]
    assert _in_writer_order(decoded) == [(12, e[1]), (10, e[2]), (11, e[3]), (20, e[4]), (21, e[5])]


@pytest.mark.integration
async def test_a_new_reader_loads_each_projects_entries_in_order(clients: ClientFactory) -> None:
    """Entries of every kind come back per project, in append order, to a reader on another connection."""
    stream = unique("J")
    entries = [
        patch(1),
        JournalEntry(P, A, 2, Insert(2, "clips", {"id": "c-9", "project_id": P, "metadata": {"k": [1]}})),
        patch(1, Q, B),
        JournalEntry(P, B, 1, Delete(1, "clips", RowId("c-1"))),
        JournalEntry(P, B, 2, Reordered(2, "scenes", ((RowId("s-2"), 0), (RowId("s-1"), 1)))),
    ]
    async with asyncio.timeout(20), journal(await clients(), stream) as writer:
        await asyncio.gather(*(writer.append_nowait(e) for e in entries))
        assert writer.depth() == 5
    async with asyncio.timeout(20), journal(await clients(), stream, "r") as reader:
        assert await reader.load(P) == [entries[0], entries[1], entries[3], entries[4]]
        assert await reader.load(Q) == [entries[2]]
        assert reader.depth() == 5
        assert await reader.load() == entries
        assert reader.depth() == 5


@pytest.mark.integration
async def test_appends_are_sent_together_not_one_round_trip_each(clients: ClientFactory) -> None:
    """Appends queued together are all on the wire before the first answer is awaited."""
    stream = unique("J")
    async with asyncio.timeout(20), journal(await clients(), stream) as writer:
        futures = [writer.append_nowait(patch(i)) for i in range(1, 101)]
        await futures[0]
        assert writer.publishes == 100
        await asyncio.gather(*futures)
        assert writer.depth() == 100


@pytest.mark.integration
async def test_removed_entries_are_gone_for_the_next_reader(clients: ClientFactory) -> None:
    """After removing a prefix and some later entries, a new reader loads exactly the rest, in order."""
    stream = unique("J")
    entries = [patch(i) for i in range(1, 11)] + [patch(i, Q, B) for i in range(1, 4)]
    async with asyncio.timeout(20), journal(await clients(), stream) as writer:
        await asyncio.gather(*(writer.append_nowait(e) for e in entries))
        await writer.remove([(A, 1), (A, 2), (A, 3)])  # a prefix of P: one purge
        await writer.remove([(A, 6), (A, 9)])  # out of order: one delete each
        await writer.remove([(A, 404)])  # unknown ids are no error
        assert writer.depth() == 8
    async with asyncio.timeout(20), journal(await clients(), stream, "r") as reader:
        assert [e.mid for e in await reader.load(P)] == [4, 5, 7, 8, 10]
        assert [e.mid for e in await reader.load(Q)] == [1, 2, 3]
        await reader.remove([(A, m) for m in (4, 5, 7, 8, 10)])  # what a next owner does after saving
        assert await reader.load(P) == []
        assert reader.depth() == 3
    async with asyncio.timeout(20), journal(await clients(), stream, "s") as third:
        assert await third.load(P) == []


@pytest.mark.integration
async def test_saved_entries_that_cannot_be_removed_now_are_one_warning(
    clients: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """NATS away while the owner drops saved entries: no failed task, a warning; a replay skips them."""
    stream = unique("J")
    client = await clients()
    async with asyncio.timeout(20), journal(client, stream) as writer:
        await writer.append(patch(1))
        await client.close()
        with caplog.at_level(logging.WARNING, logger="syncd.cluster.node"):
            await _JournalPort(writer).remove(P, [(A, 1)])
    [line] = [r.getMessage() for r in caplog.records if r.name == "syncd.cluster.node"]
    assert line.startswith(
        f"project {P}: saved edits stay in the journal for now: cannot remove saved entries"
    )


@pytest.mark.integration
async def test_closed_journal_refuses_appends(clients: ClientFactory) -> None:
    """An append after close fails at once instead of never being acknowledged."""
    stream = unique("J")
    async with asyncio.timeout(20), journal(await clients(), stream) as writer:
        await writer.append(patch(1))
    with pytest.raises(JournalError, match="not open"):
        writer.append_nowait(patch(2))


@pytest.mark.integration
async def test_appends_survive_losing_the_connected_node(
    clients: ClientFactory, nats_cluster: NatsCluster
) -> None:
    """Kill the writer's node mid-stream: every acknowledged entry is loaded once, in order.

    The lost node may lead JetStream's meta group or the stream: until another is elected (10.5 s after
    the loss at worst in 10 timed runs, more in one CI run) nothing is stored and opening the stream gets
    no answer, so the writer and the reader wait as long as the daemon would (``JOURNAL_APPEND_TIMEOUT``).
    """
    stream = unique("J")
    client = await clients()
    assert client.connected_url is not None
    victim = nats_cluster.index_of_port(urlsplit(str(client.connected_url.geturl())).port or 0)
    try:
        writer_journal = journal(client, stream, "w", JOURNAL_APPEND_TIMEOUT)
        async with asyncio.timeout(2 * JOURNAL_APPEND_TIMEOUT), writer_journal as writer:
            await writer.append(patch(0))
            acked: list[int] = []
            failed: list[int] = []

            async def one(mid: int) -> None:
                try:
                    await writer.append_nowait(patch(mid))
                    acked.append(mid)
                except JournalError:
                    failed.append(mid)

            tasks = []
            for mid in range(1, 301):
                tasks.append(asyncio.create_task(one(mid)))
                if mid == 100:
                    await asyncio.to_thread(nats_cluster.kill, victim)
                await asyncio.sleep(0.005)
            await asyncio.gather(*tasks)
            assert failed == []
        others = [url for i, url in enumerate(nats_cluster.urls) if i != victim]
        reader_journal = journal(await clients(others), stream, "r", JOURNAL_APPEND_TIMEOUT)
        async with asyncio.timeout(2 * JOURNAL_APPEND_TIMEOUT), reader_journal as reader:
            loaded = [e.mid for e in await reader.load(P)]
    finally:
        # Even when the test fails: the module's other tests need all three nodes.
        await asyncio.to_thread(nats_cluster.restart, victim)
    assert loaded == [0, *range(1, 301)]


@pytest.mark.integration
async def test_an_existing_stream_is_used_as_it_is(clients: ClientFactory) -> None:
    """A journal opened with other settings on a stream that exists uses that stream."""
    stream = unique("J")
    client = await clients()
    async with asyncio.timeout(20), journal(client, stream) as first:
        await first.append(patch(1))
    other = ReplicatedJournal(
        client.jetstream(), stream=stream, subject_prefix=stream.lower(), writer_id="x", replicas=1
    )
    async with asyncio.timeout(20), other:
        assert [e.mid for e in await other.load(P)] == [1]
    info = await client.jetstream().stream_info(stream)
    assert info.config.num_replicas == 3


@pytest.mark.integration
async def test_an_undecodable_entry_is_named(clients: ClientFactory) -> None:
    """A message on a project's subject that is not a journal entry fails the load, naming its sequence."""
    stream = unique("J")
    client = await clients()
    async with asyncio.timeout(20), journal(client, stream) as writer:
        await writer.append(patch(1))
        ack = await client.jetstream().publish(writer.subject(P), b'{"project_id": 3}')
        with pytest.raises(JournalError, match=f"entry {ack.seq} cannot be decoded"):
            await writer.load(P)


@pytest.mark.integration
async def test_an_append_nobody_stores_fails_in_time(clients: ClientFactory) -> None:
    """With the stream gone, an append is re-sent until append_timeout, then fails: it is never acked."""
    stream = unique("J")
    client = await clients()
    js = client.jetstream()
    short = ReplicatedJournal(
        js, stream=stream, subject_prefix=stream.lower(), writer_id="w", append_timeout=0.6
    )
    async with asyncio.timeout(20), short:
        await short.append(patch(1))
        await js.delete_stream(stream)
        with pytest.raises(JournalError, match=r"not stored"):
            await short.append(patch(2))
        assert short.publishes >= 3
        assert short.depth() == 1
