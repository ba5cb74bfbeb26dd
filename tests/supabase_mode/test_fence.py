"""Fencing through the Supabase adapter: a stale owner's batch comes back as StaleOwner, not as a retry."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from syncd.adapters.supabase import SupabaseBackend
from syncd.config import SupabaseSettings, WriterSettings
from syncd.errors import StaleOwner, WriteError
from tests.supabase_mode.conftest import SUPABASE_PY_DEPRECATIONS, Stack

pytestmark = pytest.mark.integration


@SUPABASE_PY_DEPRECATIONS
async def test_stale_owner_is_its_own_non_retryable_error(stack: Stack) -> None:
    """SQLSTATE SYF01 from syncd_apply becomes StaleOwner; other refusals stay plain WriteErrors."""
    project_id, _ = await stack.create_project()
    settings = SupabaseSettings(url=stack.supabase.url, service_key=SecretStr(stack.supabase.service_key))
    empty = {"project_id": project_id, "batch_id": 1, "ops": [], "mutations": []}
    async with SupabaseBackend(settings, WriterSettings()) as backend:
        assert await backend.apply_encoded({**empty, "fence": 6}) == {"rows": [], "missing": []}
        with pytest.raises(StaleOwner, match="stale owner: fence 5 is below 6") as caught:
            await backend.apply_encoded({**empty, "fence": 5})
        assert caught.value.retryable is False
        with pytest.raises(WriteError) as other:
            await backend.apply_encoded({**empty, "fence": -1})
        assert not isinstance(other.value, StaleOwner)
        assert other.value.retryable is False
