"""MutationLog: the highest accepted mid per client."""

from syncd.core.dedupe import MutationLog
from syncd.core.ids import ClientId

A = ClientId("a")
B = ClientId("b")


def test_seen_up_to_the_highest_mid() -> None:
    """A mid at or below the highest one accepted from the same client is seen."""
    log = MutationLog()
    assert not log.seen(A, 0)
    log.accept(A, 3)
    log.accept(A, 5)
    assert log.seen(A, 5)
    assert log.seen(A, 4)
    assert not log.seen(A, 6)
    assert not log.seen(B, 1)


def test_accept_never_lowers() -> None:
    """Accepting an older mid (a replay out of order) keeps the highest one."""
    log = MutationLog()
    log.accept(A, 7)
    log.accept(A, 2)
    assert log.seen(A, 7)
    assert not log.seen(A, 8)
