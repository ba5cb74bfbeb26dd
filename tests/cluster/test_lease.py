"""Ownership leases (syncd/cluster/lease.py) on a real three-node NATS JetStream cluster."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import cast

import pytest
from nats.js.kv import KeyValue

from syncd.cluster.lease import Leases
from syncd.cluster.ownership import Term, WaitUntil, encode_lease
from syncd.errors import ClusterError
from tests.cluster.conftest import ClientFactory, unique
from tests.support.nats import NatsCluster
from tests.support.waiting import ends_cancelled, wait_for

pytestmark = pytest.mark.integration

TTL = 1.0
RENEW = 0.25
PROJECT = "7d1e2a40-0000-4000-8000-000000000001"


async def instance(connect: ClientFactory, bucket: str, name: str, urls: list[str] | None = None) -> Leases:
    client = await connect(urls, name)
    return await Leases.open(client.jetstream(), bucket, name, ttl=TTL, renew_interval=RENEW)


async def test_two_contenders_one_wins(clients: ClientFactory, nats_cluster: NatsCluster) -> None:
    """Two instances, on different NATS nodes, race for a free project: exactly one gets it."""
    bucket = unique("leases")
    a = await instance(clients, bucket, "a", [nats_cluster.url(0)])
    b = await instance(clients, bucket, "b", [nats_cluster.url(1)])
    results = await asyncio.gather(a.try_acquire(PROJECT), b.try_acquire(PROJECT))
    terms = [r for r in results if isinstance(r, Term)]
    assert len(terms) == 1
    assert sum(isinstance(r, WaitUntil) for r in results) == 1
    record = await a.read(PROJECT)
    assert record is not None
    assert record.revision == terms[0].token
    assert record.owner == ("a" if isinstance(results[0], Term) else "b")


async def test_a_contender_remembers_the_entry_it_could_not_take(clients: ClientFactory) -> None:
    """The watcher of a relayed project learns who owns it from its own takeover attempt: no second read."""
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    assert b.last_seen(PROJECT) is None
    held = await a.try_acquire(PROJECT)
    assert isinstance(held, Term)
    assert isinstance(await b.try_acquire(PROJECT), WaitUntil)
    seen = b.last_seen(PROJECT)
    assert seen is not None
    assert (seen.owner, seen.revision) == ("a", held.token)
    b.forget(PROJECT)
    assert b.last_seen(PROJECT) is None
    await a.release(PROJECT, held)
    assert isinstance(await b.try_acquire(PROJECT), Term)
    assert b.last_seen(PROJECT) is None  # taken: nothing is waited for


async def test_loser_takes_over_once_the_owner_stops_and_only_then(clients: ClientFactory) -> None:
    """While the owner renews, the other waits in vain; once it stops, the other owns the project, and
    not while the owner's term could still hold by the owner's own account. How soon is printed: the
    rules bound it by the TTL (tests/cluster/test_ownership.py checks them with numbers for time), and
    a loaded machine only delays it, so it is not asserted here."""
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    lost: list[str] = []
    keeper = a.keep(PROJECT, held, lambda: lost.append("a"))
    assert await b.acquire(PROJECT, within=2 * TTL) is None
    assert held.holds(a.clock())

    keeper.cancel()  # the owner stops renewing, as if it died
    stopped = time.monotonic()
    taken = await b.acquire(PROJECT, within=30 * TTL)  # a bound on the wait, not a claim on the time
    took = time.monotonic() - stopped
    assert taken is not None
    assert not held.holds(a.clock())
    print(f"takeover {took:.2f} s after the owner stopped renewing (TTL {TTL} s)")
    assert taken.token > held.revision >= held.token
    assert lost == []


async def test_stale_owner_learns_it_lost(clients: ClientFactory) -> None:
    """An owner that stopped renewing past its TTL finds its renewal refused and gives the project up."""
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    taken = await b.acquire(PROJECT, within=4 * TTL)  # a is "paused": it renews nothing
    assert taken is not None
    assert not held.holds(a.clock())  # its own clock already told it to stop acting

    lost = asyncio.Event()
    keeper = a.keep(PROJECT, held, lost.set)  # "resumed": its next renewal is a compare-and-set
    async with asyncio.timeout(5):
        await lost.wait()
        await keeper
    assert held.lost
    assert not await a.renew(PROJECT, held)
    record = await a.read(PROJECT)
    assert record is not None
    assert (record.owner, record.revision) == ("b", taken.revision)


async def test_a_renewal_written_after_its_answer_was_lost_is_not_taken_for_another_owner(
    clients: ClientFactory,
) -> None:
    """nats-py sends what it kept while reconnecting: a renewal thought lost may be written after all.

    The next renewal, expecting the older revision, is refused; the entry in our own name shows that
    nobody else wrote, so the owner keeps the project instead of closing its editors.
    """
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    held.attempted(a.clock())  # the renewal whose answer was lost ...
    late = await a.kv.update(PROJECT, encode_lease("a", TTL), last=held.revision)  # ... written late
    assert await a.renew(PROJECT, held)
    assert not held.lost
    assert held.token < late == held.revision
    assert held.holds(a.clock())
    assert await a.renew(PROJECT, held)  # and the next renewal expects that revision
    assert held.revision > late
    taken = await b.try_acquire(PROJECT)
    assert isinstance(taken, WaitUntil)
    # Another owner's entry is still a loss.
    await b.kv.update(PROJECT, encode_lease("b", TTL), last=held.revision)
    assert not await a.renew(PROJECT, held)
    assert held.lost


async def test_token_grows_with_each_new_owner(clients: ClientFactory) -> None:
    """Acquire, release, take over, take back: every new term has a higher fencing token."""
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    tokens: list[int] = []
    first = await a.acquire(PROJECT, within=2)
    assert first is not None
    assert await a.renew(PROJECT, first)
    assert await a.renew(PROJECT, first)
    tokens.append(first.token)
    await a.release(PROJECT, first)
    assert await a.read(PROJECT) is None
    second = await b.try_acquire(PROJECT)  # released: taken at once, no wait
    assert isinstance(second, Term)
    tokens.append(second.token)
    third = await a.acquire(PROJECT, within=4 * TTL)  # b never renews: a takes over after the TTL
    assert third is not None
    tokens.append(third.token)
    assert tokens == sorted(set(tokens))
    assert not await b.renew(PROJECT, second)


async def test_release_of_a_lease_taken_over_leaves_the_new_owner(clients: ClientFactory) -> None:
    """A stale owner's release is refused by the revision guard: the new owner keeps the key."""
    bucket = unique("leases")
    a, b = await instance(clients, bucket, "a"), await instance(clients, bucket, "b")
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    taken = await b.acquire(PROJECT, within=4 * TTL)
    assert taken is not None
    await a.release(PROJECT, held)
    record = await b.read(PROJECT)
    assert record is not None
    assert record.owner == "b"
    assert await b.renew(PROJECT, taken)


async def test_a_lapsed_owner_nobody_replaced_holds_again_with_its_token(clients: ClientFactory) -> None:
    """An owner that could not renew past its TTL stops acting; a renewal nobody beat restores it."""
    bucket = unique("leases")
    a = await instance(clients, bucket, "a")
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    await asyncio.sleep(TTL * 1.2)  # paused, or NATS unreachable: no renewal
    assert not held.holds(a.clock())
    lost: list[str] = []
    keeper = a.keep(PROJECT, held, lambda: lost.append("a"))
    try:
        await wait_for(lambda: held.holds(a.clock()), "the lapsed term to hold again", 5)
        record = await a.read(PROJECT)
        assert record is not None
        assert (record.owner, record.revision) == ("a", held.revision)
        assert held.token < held.revision
        assert lost == []
    finally:
        keeper.cancel()


async def test_an_owner_cut_off_from_nats_stops_acting_without_losing(clients: ClientFactory) -> None:
    """Renewals that cannot reach NATS let the term run out (the owner stops acting); no loss is reported."""
    bucket = unique("leases")
    client = await clients(name="a")
    a = await Leases.open(client.jetstream(), bucket, "a", ttl=TTL, renew_interval=RENEW)
    held = await a.acquire(PROJECT, within=2)
    assert held is not None
    lost: list[str] = []
    keeper = a.keep(PROJECT, held, lambda: lost.append("a"))
    await client.close()
    try:
        await wait_for(lambda: not held.holds(a.clock()), "the term to run out", 3 * TTL)
        assert lost == []
        assert not keeper.done()
        with pytest.raises(ClusterError, match=f"cannot read the lease of project {PROJECT}"):
            await a.read(PROJECT)
        with pytest.raises(ClusterError, match="cannot renew"):
            await a.renew(PROJECT, held)
        await a.release(PROJECT, held)  # logged, not raised: the lease runs out by itself
    finally:
        keeper.cancel()


async def test_a_bucket_made_by_another_instance_is_used_as_it_is(clients: ClientFactory) -> None:
    """An instance with another TTL binds to the existing bucket instead of failing."""
    bucket = unique("leases")
    first = await instance(clients, bucket, "a")
    client = await clients()
    second = await Leases.open(client.jetstream(), bucket, "b", ttl=3 * TTL, renew_interval=RENEW)
    held = await first.acquire(PROJECT, within=2)
    assert held is not None
    record = await second.read(PROJECT)
    assert record is not None
    assert (record.owner, record.ttl) == ("a", TTL)


class AnswerWithTheCancel:
    """A lease bucket whose update is answered in the same moment its caller is cancelled: on
    Python 3.11, ``asyncio.wait_for`` (which nats-py awaits every request with) then returns the
    answer and drops the cancellation."""

    def __init__(self) -> None:
        self.revision = 1
        self.updates = 0
        self.started = asyncio.Event()

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.updates += 1
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):  # the answer came with the cancellation
            await asyncio.sleep(3600)
        self.revision += 1
        return self.revision


async def test_a_keeper_told_to_stop_stops_even_when_the_answer_swallows_the_cancellation() -> None:
    """The owner that lets a project go cancels its keeper; a keeper that went on renewing would hold
    the lease for nobody, and once the term is given up would report the project lost, closing the
    editors of the next term if the project was taken again meanwhile."""
    kv = AnswerWithTheCancel()
    leases = Leases(cast(KeyValue, kv), "a", ttl=TTL, renew_interval=0.0)
    lost: list[str] = []
    keeper = leases.keep(PROJECT, Term(1, leases.clock(), TTL, 0.0), lambda: lost.append("a"))
    await kv.started.wait()
    assert await ends_cancelled(keeper), "the keeper went on renewing"
    assert (kv.updates, lost) == (1, [])
