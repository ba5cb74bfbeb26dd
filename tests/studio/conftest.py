"""Fixtures of the ``syncd.studio`` tests: the local daemon of tests/http and the Supabase stand-in."""

from __future__ import annotations

from tests.http.conftest import daemon
from tests.supabase_mode.conftest import stack

__all__ = ["daemon", "stack"]
