"""How the daemon reports Supabase Storage failures (SupabaseFiles in syncd/storage.py), without Storage."""

from __future__ import annotations

import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import AsyncClientOptions, acreate_client

from syncd.errors import EditRejected
from syncd.storage import SupabaseFiles, storage_refusal
from tests.http.conftest import WAIT, new_id


async def test_supabase_storage_out_of_reach_or_down_is_unavailable() -> None:
    """What the HTTP API answers 503 to (retry), not 500 or 400: no connection, or Storage's own 5xx."""
    http = httpx.AsyncClient(timeout=WAIT)
    client = await acreate_client(
        "http://127.0.0.1:9", "sb_secret_" + "a" * 32, options=AsyncClientOptions(httpx_client=http)
    )
    files = SupabaseFiles(client)
    path = f"projects/{new_id()}/thumbnails/a.png"
    calls = [
        files.upload("thumbnails", path, b"png", "image/png", upsert=True),
        files.remove("thumbnails", path),
        files.signed_url("clips", path, 60),
    ]
    try:
        for call in calls:
            with pytest.raises(EditRejected) as caught:
                await call
            assert (caught.value.code, caught.value.message) == (
                "unavailable",
                "storage cannot be reached (ConnectError)",
            )
    finally:
        await http.aclose()
    assert storage_refusal(
        StorageApiError("Storage is unavailable", "DatabaseConnectionLimit", 503)
    ).code == ("unavailable")
    assert (
        storage_refusal(StorageApiError("The resource already exists", "Duplicate", 409)).code == "conflict"
    )
    assert storage_refusal(StorageApiError("Invalid key", "InvalidKey", 400)).code == "bad_request"
