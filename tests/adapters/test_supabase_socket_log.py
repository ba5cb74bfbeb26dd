"""The Supabase backend's own lines on the Realtime socket: one when it is lost, one when it is back."""

from __future__ import annotations

import logging

import pytest

from syncd.adapters.supabase import SocketLog

URL = "http://supabase.test"


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """The lines logged so far, as (level, message), then forget them."""
    seen = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "syncd.adapters.supabase"]
    caplog.clear()
    return seen


def test_a_lost_socket_is_one_warning_and_its_return_one_info(caplog: pytest.LogCaptureFixture) -> None:
    """However many passes see it down, the outage is two lines."""
    caplog.set_level(logging.INFO)
    states = SocketLog(URL, grace=5.0)
    states.observe(False, 0.0)
    states.observe(True, 0.1)
    assert lines(caplog) == []  # a socket that opens at start is not news

    states.observe(False, 100.0)
    assert lines(caplog) == [
        (
            "WARNING",
            f"Realtime socket to {URL} lost; reconnecting. Edits are still taken and saved; "
            "other writers' changes reach the editors once it is back",
        )
    ]
    for now in (105.0, 110.0, 200.0):
        states.observe(False, now)
    assert lines(caplog) == []
    states.observe(True, 212.4)
    assert lines(caplog) == [("INFO", f"Realtime socket to {URL} is back")]
    states.observe(True, 217.4)
    assert lines(caplog) == []

    states.observe(False, 300.0)
    states.observe(True, 303.0)
    assert [level for level, _ in lines(caplog)] == ["WARNING", "INFO"]


def test_a_socket_that_never_opened_is_reported_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    """At start the socket is down until the first connect; past the grace that is worth one warning."""
    caplog.set_level(logging.INFO)
    states = SocketLog(URL, grace=5.0)
    states.observe(False, 10.0)
    states.observe(False, 14.9)
    assert lines(caplog) == []
    states.observe(False, 15.0)
    states.observe(False, 20.0)
    assert lines(caplog) == [("WARNING", f"Realtime socket to {URL} cannot be opened yet; retrying")]
    states.observe(True, 31.0)
    assert lines(caplog) == [("INFO", f"Realtime socket to {URL} is open")]
