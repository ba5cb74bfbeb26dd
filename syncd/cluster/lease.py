"""Project ownership leases in a JetStream key-value bucket: the NATS calls around `syncd.cluster.ownership`.

One key per project (the project id), history 1, replicated on ``replicas`` nodes. Acquiring is a KV
``create`` (absent key) or an ``update`` with the observed revision as the expected last one (a key
left unchanged for a TTL); renewing is an ``update`` on the revision of our own last write; releasing
is a ``delete`` guarded by that revision. The server refuses each of these writes if anything else
wrote the key in between, so at most one instance holds a project's current entry. The bucket's own
TTL (``GC_TTLS`` lease TTLs) only clears keys that nobody renews any more; it plays no part in who
owns what, because expiry by the bucket would depend on the NATS servers' wall clocks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig

from syncd.cluster.connection import honour_cancellation, patiently
from syncd.cluster.ownership import (
    READ_SHARE,
    Claim,
    Create,
    LeaseRecord,
    TakeOver,
    Term,
    WaitUntil,
    decode_lease,
    encode_lease,
)
from syncd.errors import ClusterError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

GC_TTLS = 12
"""The bucket's TTL in lease TTLs: a key nobody has written for that long is removed."""

OPEN_WITHIN = 15.0
"""Seconds opening the bucket may take while JetStream elects a leader."""

Clock = Callable[[], float]


class Leases:
    """This instance's side of the ownership leases: take, renew, keep and give up projects.

    Build with :meth:`open`. Each method that talks to NATS raises `ClusterError` when NATS cannot be
    reached; a compare-and-set that another instance won is an answer, not an error.

    Args:
        kv: the lease bucket.
        instance_id: this instance.
        ttl: the lease TTL in seconds.
        renew_interval: seconds between renewals of a held lease.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        kv: KeyValue,
        instance_id: str,
        ttl: float,
        renew_interval: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.kv = kv
        self.instance_id = instance_id
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.clock = clock
        self.poll_interval = min(renew_interval, ttl * READ_SHARE)
        """Seconds between two reads of a key this instance waits to take over."""
        self._claims: dict[str, Claim] = {}

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        bucket: str,
        instance_id: str,
        *,
        ttl: float,
        renew_interval: float,
        replicas: int = 3,
    ) -> Leases:
        """Create the bucket if it does not exist yet (same settings on every instance) and bind to it.

        Raises:
            ClusterError: NATS refused or could not be reached.
        """
        config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl * GC_TTLS, replicas=replicas)

        async def create() -> KeyValue:
            try:
                return await js.create_key_value(config)
            except nats.js.errors.BadRequestError:
                # Another instance made it first, perhaps with other settings: use it as it is.
                return await js.key_value(bucket)

        try:
            kv = await patiently(create, OPEN_WITHIN)
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot open the lease bucket {bucket}: {exc!r}") from exc
        return cls(kv, instance_id, ttl, renew_interval)

    async def read(self, project_id: str) -> LeaseRecord | None:
        """The project's lease entry, or None when nobody holds it.

        Raises:
            ClusterError: NATS could not be asked.
        """
        try:
            entry = await self.kv.get(project_id)
        except nats.js.errors.KeyNotFoundError:
            return None  # never written, deleted, or cleared by the bucket's TTL
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot read the lease of project {project_id}: {exc!r}") from exc
        assert entry.revision is not None
        return decode_lease(entry.revision, entry.value or b"", self.ttl)

    async def try_acquire(self, project_id: str) -> Term | WaitUntil:
        """Take the project if the rules allow it now; else say when to try again.

        Raises:
            ClusterError: NATS could not be asked.
        """
        claim = self._claims.setdefault(project_id, Claim(self.instance_id, self.ttl))
        step = claim.decide(self.clock(), await self.read(project_id))
        if isinstance(step, WaitUntil):
            return step
        value = encode_lease(self.instance_id, self.ttl)
        sent = self.clock()
        try:
            if isinstance(step, Create):
                revision = await self.kv.create(project_id, value)
            else:
                assert isinstance(step, TakeOver)
                revision = await self.kv.update(project_id, value, last=step.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return WaitUntil(self.clock())  # another instance wrote first: read again
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot write the lease of project {project_id}: {exc!r}") from exc
        del self._claims[project_id]
        log.info("took project %s (fencing token %d)", project_id, revision)
        return Term(revision, sent, self.ttl, self.renew_interval)

    def last_seen(self, project_id: str) -> LeaseRecord | None:
        """The entry the last `try_acquire` of the project read and could not take (None: none)."""
        claim = self._claims.get(project_id)
        return None if claim is None else claim.seen

    def pause(self, project_id: str) -> float:
        """Seconds until a contender should try the project again.

        A poll interval, or less when the entry it waits on may be taken sooner: the takeover then
        comes when the rules allow it, not up to a poll later.
        """
        now = self.clock()
        claim = self._claims.get(project_id)
        step = None if claim is None else claim.next_step
        at = step.at if isinstance(step, WaitUntil) else now + self.poll_interval
        return max(0.0, min(at, now + self.poll_interval) - now)

    def forget(self, project_id: str) -> None:
        """Stop tracking a project this instance no longer waits for."""
        self._claims.pop(project_id, None)

    async def acquire(self, project_id: str, within: float) -> Term | None:
        """Take the project, waiting as long as the rules require; None if ``within`` s pass first.

        While waiting, the key is read every `poll_interval` s (``READ_SHARE`` of the TTL), so that the
        owner's last renewal is seen soon after it was written, and once more when the entry may be
        taken: the takeover comes at most one TTL (plus the reads' round trips) after the owner's last
        renewal.

        Raises:
            ClusterError: NATS could not be asked.
        """
        deadline = self.clock() + within
        while True:
            step = await self.try_acquire(project_id)
            if isinstance(step, Term):
                return step
            now = self.clock()
            if now >= deadline:
                return None
            await asyncio.sleep(max(0.0, min(step.at, now + self.poll_interval, deadline) - now))

    async def renew(self, project_id: str, term: Term) -> bool:
        """Renew a held lease; False (and the term given up) when another instance has written the key.

        Raises:
            ClusterError: NATS could not be asked; the term stays valid until its time runs out.
        """
        sent = self.clock()
        term.attempted(sent)
        try:
            revision = await self.kv.update(
                project_id, encode_lease(self.instance_id, term.ttl), last=term.revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            if await self._own_renewal_applied(project_id, term):
                return True
            term.give_up()
            log.warning(
                "lost project %s (fencing token %d): another instance holds it", project_id, term.token
            )
            return False
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot renew the lease of project {project_id}: {exc!r}") from exc
        term.renewed(sent, revision)
        return True

    async def _own_renewal_applied(self, project_id: str, term: Term) -> bool:
        """Whether the key moved on because of a renewal of ours whose answer was lost.

        nats-py keeps what it sends while it reconnects, and sends it once NATS is back: a renewal
        that timed out may still be written, and the next one, expecting the older revision, is then
        refused. A newer entry in our own name proves it: a write by anyone else in between would
        have made ours fail, and nobody else writes our name.

        Raises:
            ClusterError: NATS could not be asked.
        """
        current = await self.read(project_id)
        if current is None or current.owner != self.instance_id or current.revision <= term.revision:
            return False
        term.adopt(current.revision)
        log.info(
            "lease of project %s: a renewal sent while NATS was away was written after all (revision %d)",
            project_id,
            current.revision,
        )
        return True

    async def release(self, project_id: str, term: Term) -> None:
        """Give a lease up at once (delete guarded by our revision), so another may take it without waiting.

        A lease already taken over is left alone. NATS errors are logged, not raised: the lease then
        runs out by itself.
        """
        term.give_up()
        try:
            await self.kv.delete(project_id, last=term.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        except nats.errors.Error as exc:
            log.warning("cannot release project %s, it will expire instead: %r", project_id, exc)

    def keep(self, project_id: str, term: Term, on_lost: Callable[[], None]) -> asyncio.Task[None]:
        """Renew ``term`` in the background until another instance takes the key or the task is cancelled.

        ``on_lost`` is called once, when a renewal finds the key written by someone else. While NATS
        does not answer (a leader being elected after a node was lost), renewals go on: the term
        stops holding once its time runs out, so the owner stops acting, and holds again with the same
        token when a renewal succeeds, since that compare-and-set proves that nobody wrote the key.
        """
        return asyncio.create_task(self._keep(project_id, term, on_lost), name=f"syncd.lease.{project_id}")

    async def _keep(self, project_id: str, term: Term, on_lost: Callable[[], None]) -> None:
        lapsed = False
        while not term.lost:
            await asyncio.sleep(max(0.0, term.renew_at() - self.clock()))
            error: ClusterError | None = None
            try:
                renewed: bool | None = await self.renew(project_id, term)
            except ClusterError as exc:
                renewed, error = None, exc  # not known: the term holds until its time runs out
            # A keeper told to stop that went on renewing would report the project lost once its
            # term was given up (closing the editors of a next term, if the project was taken again).
            honour_cancellation()
            if renewed is False:
                break
            if error is not None:
                if not lapsed and not term.holds(self.clock()):
                    lapsed = True
                    log.warning(
                        "lease of project %s lapsed, renewing as NATS answers again: %s", project_id, error
                    )
                await asyncio.sleep(min(0.2, self.renew_interval / 4))
            elif lapsed:
                lapsed = False
                log.info(
                    "lease of project %s renewed after a lapse (fencing token %d)", project_id, term.token
                )
        on_lost()
