"""What the stand-in's tests share besides fixtures: the repository's paths and the fixtures' types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from supabase import AClient

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The syncd checkout: its ``supabase/`` project is the schema the stand-in is tested with."""

SUPABASE_DIR = REPO_ROOT / "supabase"

ClientFactory = Callable[..., Awaitable[AClient]]
"""The ``make_client`` fixture: ``await make_client(key, token=None)`` builds a supabase-py client."""

UserFactory = Callable[[], Awaitable[str]]
"""The ``new_user`` fixture: ``await new_user()`` adds a row to ``auth.users`` and returns its id."""
