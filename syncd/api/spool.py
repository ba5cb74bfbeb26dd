"""Spool: an upload's body written to a file of the state directory's file system as it arrives.

The edits' journal and the embedded store live on that file system too, and a journal that cannot be
written stops the daemon (an edit it cannot make durable is not acknowledged). Local mode keeps every
uploaded clip and export there, so uploads are where a disk fills up: an upload is refused where it
would leave less than ``reserve`` bytes free, before its body is read when it says its length, and
otherwise as soon as it passes that point.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from syncd.errors import EditRejected
from syncd.statedir import free_bytes

CHUNK = 1024 * 1024
_MB = 1024 * 1024


class Spool:
    """Writes upload bodies under ``folder``, keeping ``reserve`` bytes of its file system free."""

    def __init__(self, folder: Path, reserve: int) -> None:
        self.folder = folder
        self.reserve = reserve

    def check_room(self, size: int) -> None:
        """Refuse ``size`` more bytes where they would leave less than the reserve free.

        Raises:
            EditRejected: ``unavailable``, saying how much is free and what is kept.
        """
        free = free_bytes(self.folder)
        if not math.isnan(free) and free - size < self.reserve:
            raise EditRejected(
                "unavailable",
                f"the daemon's disk has {free / _MB:.0f} MB free and keeps {self.reserve / _MB:.0f} MB "
                "(daemon.upload_reserve) for the edits' journal and store: free some space first",
            )

    async def take(self, request: web.Request, limit: int, bucket: str) -> Path:
        """Write the request's body to a new file; refuse it once it passes ``limit`` or the reserve."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.check_room(request.content_length or 0)
        spool = self.folder / f"{uuid.uuid4().hex}.partial"
        size = 0
        try:
            with spool.open("wb") as f:
                async for chunk in request.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise EditRejected(
                            "too_large", f"the file is over the limit of bucket {bucket} ({limit} bytes)"
                        )
                    if request.content_length is None:
                        self.check_room(len(chunk))
                    await asyncio.to_thread(f.write, chunk)
                await asyncio.to_thread(_sync_file, f)
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
        return spool


def _sync_file(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
