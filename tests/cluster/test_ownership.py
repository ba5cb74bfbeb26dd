"""The lease decisions of syncd/cluster/ownership.py, with numbers for time."""

from __future__ import annotations

import pytest

from syncd.cluster.ownership import (
    GUARD,
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

WAIT = 5.0 * (1 - READ_SHARE)
"""How long a contender waits on an unchanged entry with a 5 s TTL: 4.75 s."""


def rec(revision: int, owner: str = "b", ttl: float = 5.0) -> LeaseRecord:
    return LeaseRecord(revision, owner, ttl)


def test_absent_key_is_created() -> None:
    """Nobody holds the project: take it with a create."""
    assert Claim("a", 5.0).decide(100.0, None) == Create()


def test_held_key_is_taken_only_after_the_ttl_less_a_read_unchanged() -> None:
    """The wait counts from when this instance first saw the revision, on its own clock."""
    assert pytest.approx(4.75) == WAIT
    claim = Claim("a", 5.0)
    assert claim.decide(100.0, rec(7)) == WaitUntil(100.0 + WAIT)
    assert claim.decide(104.7, rec(7)) == WaitUntil(100.0 + WAIT)
    assert claim.decide(104.75, rec(7)) == TakeOver(7)


def test_a_renewal_restarts_the_wait() -> None:
    """A new revision means the owner is alive: the wait starts again from the read that saw it."""
    claim = Claim("a", 5.0)
    claim.decide(100.0, rec(7))
    assert claim.decide(104.0, rec(9)) == WaitUntil(104.0 + WAIT)
    assert claim.decide(108.0, rec(9)) == WaitUntil(104.0 + WAIT)
    assert claim.decide(109.0, rec(9)) == TakeOver(9)


def test_the_longer_ttl_counts() -> None:
    """An owner that promised a longer TTL than ours is waited on for its TTL, and ours when longer."""
    assert Claim("a", 5.0).decide(0.0, rec(3, ttl=8.0)) == WaitUntil(8.0 * (1 - READ_SHARE))
    assert Claim("a", 5.0).decide(0.0, rec(3, ttl=2.0)) == WaitUntil(WAIT)


def test_a_key_gone_and_back_is_watched_afresh() -> None:
    """After the key was absent, a new entry is waited on for a whole TTL from when it was seen."""
    claim = Claim("a", 5.0)
    claim.decide(0.0, rec(3))
    assert claim.decide(4.0, None) == Create()
    assert claim.decide(6.0, rec(3)) == WaitUntil(6.0 + WAIT)


def test_our_own_leftover_entry_is_taken_at_once() -> None:
    """An entry this instance wrote and gave up is taken back by compare-and-set without waiting."""
    assert Claim("a", 5.0).decide(0.0, rec(4, owner="a")) == TakeOver(4)


def test_owner_acts_until_its_last_sent_write_plus_the_guarded_ttl() -> None:
    """Validity counts from when the successful write was sent, less the guard share of the TTL."""
    term = Term(token=12, sent=100.0, ttl=5.0, renew_interval=1.0)
    assert (term.token, term.revision) == (12, 12)
    assert term.renew_at() == 101.0
    assert term.valid_until() == pytest.approx(100.0 + 5.0 * (1 - GUARD))
    assert term.holds(104.0)
    assert not term.holds(104.5)


def test_renewal_moves_validity_but_keeps_the_token() -> None:
    """A renewal extends the term and updates the revision to renew next; the fencing token stays."""
    term = Term(token=12, sent=100.0, ttl=5.0, renew_interval=1.0)
    term.renewed(sent=101.0, revision=15)
    assert (term.token, term.revision, term.renew_at()) == (12, 15, 102.0)
    assert term.holds(105.0)
    term.renewed(sent=100.5, revision=16)  # an answer to an older request does not shorten the term
    assert term.renew_at() == 102.0


def test_an_own_renewal_written_after_its_answer_was_lost_counts_from_the_earliest_unanswered() -> None:
    """Which of the unanswered renewals was written is unknown: the term ends as if it were the first."""
    term = Term(token=12, sent=100.0, ttl=5.0, renew_interval=1.0)
    term.attempted(101.0)  # timed out
    term.attempted(101.2)  # timed out too
    term.adopt(revision=14)
    assert (term.token, term.revision, term.renew_at()) == (12, 14, 102.0)
    assert term.valid_until() == pytest.approx(101.0 + 5.0 * (1 - GUARD))
    term.attempted(102.0)
    term.renewed(sent=102.0, revision=15)  # answered: nothing unconfirmed is left over
    term.adopt(revision=16)
    assert (term.revision, term.renew_at()) == (16, 103.0)


def test_a_term_given_up_holds_nothing() -> None:
    """Once lost, the owner may not act, whatever the time."""
    term = Term(token=1, sent=0.0, ttl=5.0, renew_interval=1.0)
    term.give_up()
    assert not term.holds(0.1)


def test_a_contender_reading_every_read_share_takes_over_within_a_ttl_of_the_last_renewal() -> None:
    """However the owner's last renewal falls between two reads, the takeover is at most one TTL later.

    The contender reads every ``READ_SHARE`` of the TTL, and once more when its wait ends
    (`syncd.cluster.lease.Leases.pause`).
    """
    ttl, read_every = 5.0, 5.0 * READ_SHARE
    for renewed_at in (0.0, 0.01, 0.1, 0.2, 0.249, 0.25):
        claim = Claim("a", ttl)
        now = -read_every
        step = claim.decide(now, rec(1))  # the entry before the owner's last renewal
        while not isinstance(step, TakeOver):
            assert isinstance(step, WaitUntil)
            now = min(step.at, now + read_every)
            step = claim.decide(now, rec(2) if now >= renewed_at else rec(1))
        assert step == TakeOver(2)
        assert renewed_at < now <= renewed_at + ttl


def test_takeover_never_comes_before_the_old_owner_stops() -> None:
    """For any read delay, the contender's takeover time is after the owner's last valid instant."""
    for delay in (0.0, 0.01, 0.5, 2.0):
        owner = Term(token=1, sent=10.0, ttl=5.0, renew_interval=1.0)
        owner.renewed(sent=11.0, revision=2)  # stored a moment later, then seen by the contender
        claim = Claim("a", 5.0)
        seen_at = 11.0 + delay
        step = claim.decide(seen_at, rec(2, owner="b"))
        assert isinstance(step, WaitUntil)
        assert step.at > owner.valid_until()
        assert claim.decide(step.at, rec(2, owner="b")) == TakeOver(2)


def test_lease_values_round_trip() -> None:
    """The value names the owner and its TTL."""
    assert decode_lease(4, encode_lease("node-1", 2.5), 5.0) == LeaseRecord(4, "node-1", 2.5)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[]",
        b'{"owner": 1, "ttl": 5}',
        b'{"owner": "x", "ttl": true}',
        b'{"owner": "x", "ttl": 0}',
    ],
)
def test_unreadable_values_count_as_an_unknown_owner(value: bytes) -> None:
    """A value this version cannot read is an entry of nobody known, with our own TTL."""
    assert decode_lease(9, value, 5.0) == LeaseRecord(9, "", 5.0)
