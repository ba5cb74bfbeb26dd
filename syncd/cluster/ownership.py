"""Who owns a project: the decisions of an ownership lease, without I/O.

A project's lease is one key of a JetStream key-value bucket. Its value names the owner and the TTL
the owner promised to renew within (`LeaseRecord`); its KV revision changes with every write.

The rules, chosen so that no two machines' clocks are ever compared:

- A contender (`Claim`) takes an absent key with a create (write only if absent). A present key it
  may take over only once it has seen the *same* revision for ``ttl * (1 - READ_SHARE)`` on its own
  monotonic clock, and then only with a compare-and-set on that revision. Seeing the revision happens
  after it was written, so the owner's last renewal started before the contender's wait began; and a
  contender that reads the key every ``READ_SHARE * ttl`` sees it within that time, so it takes over
  at most one TTL after the owner's last renewal: within a TTL of the owner's death.
- An owner (`Term`) acts only until ``sent + ttl * (1 - GUARD)``, where ``sent`` is when it *sent* its
  last successful write (acquire or renewal), on its own monotonic clock. That instant is
  ``(GUARD - READ_SHARE) * ttl`` before any contender may take over, as long as the two clocks run
  at rates within that share of each other (real clocks differ by millionths).
- The fencing token of a term is the KV revision at which the owner acquired the key. Renewals change
  the revision but not the token; a new owner's acquisition comes after every write of the old owner,
  so its token is higher than any token the old owner ever used.

Time is a float of seconds on a monotonic clock, passed in as ``now``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeAlias

GUARD = 0.1
"""Share of the TTL an owner gives up, for the reads of contenders and the difference in clock rates."""
READ_SHARE = GUARD / 2
"""A contender reads a key it waits on every this share of the TTL, and waits that much less."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A lease key as one read showed it.

    Attributes:
        revision: the KV revision of the entry.
        owner: the instance that wrote it ("" when the value could not be read).
        ttl: the seconds within which that owner promised to renew it.
    """

    revision: int
    owner: str
    ttl: float


def encode_lease(owner: str, ttl: float) -> bytes:
    """Return the value of a lease key: ``{"owner": ..., "ttl": ...}`` as UTF-8 JSON."""
    return json.dumps({"owner": owner, "ttl": ttl}, separators=(",", ":")).encode()


def decode_lease(revision: int, value: bytes, default_ttl: float) -> LeaseRecord:
    """Read a lease key's value; one that cannot be read counts as owned by nobody known.

    Such an entry is still taken over only after ``default_ttl`` seconds without a change, so that a
    newer instance writing a value this one cannot read is not robbed of its lease.
    """
    try:
        data = json.loads(value)
        owner, ttl = data["owner"], data["ttl"]
        if not isinstance(owner, str) or isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise TypeError("owner must be text and ttl a number")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
    except (ValueError, TypeError, KeyError):
        return LeaseRecord(revision, "", default_ttl)
    return LeaseRecord(revision, owner, float(ttl))


@dataclass(frozen=True, slots=True)
class Create:
    """Write the key only if it is absent (a KV create)."""


@dataclass(frozen=True, slots=True)
class TakeOver:
    """Replace the entry at ``revision`` (a KV update with that revision as the expected last one)."""

    revision: int


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Read the key again at ``at`` (monotonic seconds)."""

    at: float


Step: TypeAlias = Create | TakeOver | WaitUntil
"""What a contender does next."""


class Claim:
    """One instance's wish to own one project: when it may write the lease key.

    Args:
        instance_id: this instance.
        ttl: this instance's lease TTL; an entry is waited on for the longer of it and the entry's own.
    """

    def __init__(self, instance_id: str, ttl: float) -> None:
        self.instance_id = instance_id
        self.ttl = ttl
        self._watched: int | None = None
        self._since = 0.0
        self.seen: LeaseRecord | None = None
        """What the last read showed (None: the key was absent, or nothing was read yet)."""
        self.next_step: Step = Create()
        """What the last decision was: its `WaitUntil` says when the entry may be taken."""

    def decide(self, now: float, seen: LeaseRecord | None) -> Step:
        """Return the next step given what a read at ``now`` showed (None: the key is absent)."""
        self.seen = seen
        self.next_step = self._decide(now, seen)
        return self.next_step

    def _decide(self, now: float, seen: LeaseRecord | None) -> Step:
        if seen is None:
            self._watched = None
            return Create()
        if seen.owner == self.instance_id:
            # An entry of our own that we no longer hold (we gave the term up): nobody else wrote
            # since, and the compare-and-set makes sure of that.
            return TakeOver(seen.revision)
        if seen.revision != self._watched:
            self._watched, self._since = seen.revision, now
        expires = self._since + max(self.ttl, seen.ttl) * (1 - READ_SHARE)
        if now >= expires:
            return TakeOver(seen.revision)
        return WaitUntil(expires)


class Term:
    """An owner's hold on one project, from the acquisition until it is given up or lost.

    Args:
        token: the fencing token: the KV revision of the acquisition.
        sent: when the acquiring write was sent.
        ttl: the lease TTL this owner wrote into the key.
        renew_interval: seconds between renewals.
    """

    def __init__(self, token: int, sent: float, ttl: float, renew_interval: float) -> None:
        self.token = token
        self.revision = token
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.lost = False
        self._sent = sent
        self._unconfirmed: float | None = None

    def renew_at(self) -> float:
        """When the next renewal is due."""
        return self._sent + self.renew_interval

    def valid_until(self) -> float:
        """The end of the time in which no other instance can have taken the lease."""
        return self._sent + self.ttl * (1 - GUARD)

    def holds(self, now: float) -> bool:
        """Whether the owner may act at ``now``: not lost, and within `valid_until`."""
        return not self.lost and now < self.valid_until()

    def attempted(self, sent: float) -> None:
        """Record a renewal sent at ``sent`` whose outcome is not known yet."""
        if self._unconfirmed is None:
            self._unconfirmed = sent

    def renewed(self, sent: float, revision: int) -> None:
        """Record a successful renewal, sent at ``sent``, that wrote ``revision``."""
        self._sent = max(self._sent, sent)
        self.revision = revision
        self._unconfirmed = None

    def adopt(self, revision: int) -> None:
        """Record that one of the renewals sent since the last confirmed one wrote ``revision``.

        Its answer was lost (NATS went away and sent the request once it was back), so which one
        it was is not known: the term counts from the earliest of them, the one that ends it first.
        """
        if self._unconfirmed is not None:
            self._sent = max(self._sent, self._unconfirmed)
        self.revision = revision
        self._unconfirmed = None

    def give_up(self) -> None:
        """Record that the lease is gone: another instance wrote the key, or this one released it."""
        self.lost = True
