"""Identifier types: plain strings at run time, and a mutation id is a (client, mid) pair."""

from syncd.core.ids import ClientId, MutationId, ProjectId, RowId


def test_ids_are_strings() -> None:
    """NewTypes cost nothing at run time: they are the strings themselves."""
    assert ProjectId("p") == "p"
    assert isinstance(RowId("r"), str)


def test_mutation_id_orders_by_client_then_mid() -> None:
    """Mutation ids are tuples, so they sort by client and then by mid."""
    ids: list[MutationId] = [(ClientId("b"), 1), (ClientId("a"), 2), (ClientId("a"), 1)]
    assert sorted(ids) == [("a", 1), ("a", 2), ("b", 1)]
