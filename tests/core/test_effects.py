"""Effects are frozen values that compare by content."""

import dataclasses

import pytest

from syncd.core.effects import Ack, Change, Error, Presence, PresenceEditor
from syncd.core.ids import ClientId, ConnId, ProjectId, RowId, UserId


def test_effects_compare_by_value_and_are_frozen() -> None:
    """Two effects with the same fields are equal, and none can be changed."""
    assert Ack(ConnId("c"), 1, 2) == Ack(ConnId("c"), 1, 2)
    change = Change(ProjectId("p"), 1, "scenes", "delete", RowId("s"), None, None, "db", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.seq = 2  # type: ignore[misc]


def test_effects_have_no_instance_dict() -> None:
    """Effects are slotted, so millions of them stay small."""
    error = Error(ProjectId("p"), None, None, "conflict", "x")
    assert not hasattr(error, "__dict__")
    assert Presence(ProjectId("p"), (PresenceEditor(ClientId("c"), UserId("u")),)).editors[0].user_id == "u"
