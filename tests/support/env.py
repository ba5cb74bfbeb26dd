"""One clean environment for the daemons and CLI runs that tests start: nothing leaks in from the caller.

A developer's shell or a CI job may set ``SUPABASE_URL``, ``SYNCD_*`` overrides or systemd's
``NOTIFY_SOCKET``; any of them would switch a test's daemon to another mode or socket.
"""

from __future__ import annotations

import os

import pytest

SCRUBBED = ("SYNCD_", "SUPABASE_", "NOTIFY_")
"""Prefixes of the variables that configure syncd (its settings, Supabase mode, systemd's socket)."""


def clean_environ() -> dict[str, str]:
    """This process's environment without the variables of :data:`SCRUBBED`, for a child process."""
    return {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED)}


def scrub_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the variables of :data:`SCRUBBED` from this process for one test (restored afterwards)."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED):
            monkeypatch.delenv(name)


def command_stderr(text: str) -> str:
    """A one-shot command's stderr as its user sees it: without asyncio's debug notes.

    tests/run sets ``PYTHONASYNCIODEBUG``, which children inherit; its "Executing <Task …> took 0.1
    seconds" lines come from the test set-up, not from the command.
    """
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("WARNING asyncio:"))
