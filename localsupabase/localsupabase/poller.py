"""The change source: a temporary wal2json slot polled the way Supabase Realtime's ``list_changes`` does.

Realtime creates ``pg_create_logical_replication_slot(slot, 'wal2json', true)`` once the publication has a
table, then repeatedly calls ``pg_logical_slot_get_changes`` with a fixed option list, taking at most 100
changes per call. Its cadence: poll again at once after delivering something, wait 100 ms plus 50-100 ms of
jitter when the slot had changes that nobody could receive, and 500 ms when the slot was empty. A temporary
slot belongs to the session that created it, so the poller keeps one dedicated connection; dropping the slot
(or losing the session) loses every change not yet read.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from localsupabase.faults import Faults
from localsupabase.subscriptions import PUBLICATION

logger = logging.getLogger(__name__)

ChangeHandler = Callable[[asyncpg.Connection, str], Awaitable[bool]]
"""Receives the polling connection and one wal2json change; returns whether anyone received it."""

_GET_CHANGES = """
select data
from pg_catalog.pg_logical_slot_get_changes(
    $1, null, $2,
    'include-pk', 'true',
    'include-transaction', 'false',
    'include-timestamp', 'true',
    'include-type-oids', 'true',
    'format-version', '2',
    'actions', $3::text,
    'add-tables', $4::text
)
"""

_PUBLICATION_INFO = """
select
    concat_ws(
        ',',
        case when bool_or(pp.pubinsert) then 'insert' end,
        case when bool_or(pp.pubupdate) then 'update' end,
        case when bool_or(pp.pubdelete) then 'delete' end
    ) as actions,
    coalesce(
        string_agg(ppt.schemaname || '.' || ppt.tablename, ',')
            filter (where ppt.tablename is not null and ppt.tablename not like '% %'),
        ''
    ) as tables
from pg_catalog.pg_publication pp
left join pg_catalog.pg_publication_tables ppt on ppt.pubname = pp.pubname
where pp.pubname = $1
group by pp.pubname
"""


@dataclass
class PollerConfig:
    """Timing and limits of the poller; tests may change them while it runs.

    Attributes:
        max_changes: Changes taken from the slot per call.
        max_record_bytes: Raw changes larger than this are sent with ``Error 413`` and small values only.
        poll_interval: Seconds to wait after a poll whose changes nobody could receive.
        poll_jitter: Range of extra random seconds added to ``poll_interval``.
        idle_interval: Seconds to wait after a poll that found nothing.
        error_interval: Seconds to wait after a poll that failed.
    """

    max_changes: int = 100
    max_record_bytes: int = 1024 * 1024
    poll_interval: float = 0.1
    poll_jitter: tuple[float, float] = (0.05, 0.1)
    idle_interval: float = 0.5
    error_interval: float = 1.0


class PollOutcome(enum.Enum):
    """What one poll found, which decides how long to wait before the next."""

    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    IDLE = "idle"
    FAILED = "failed"


class SlotPoller:
    """Reads changes from a temporary wal2json slot and hands them to a handler, in commit order.

    Args:
        conn: A connection used by nothing else: the slot lives and dies with its session.
        handler: Called for each change with ``conn`` and the wal2json text.
        faults: ``faults.skip_changes`` drops that many upcoming changes unread by anyone.
        config: Timing and limits.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        handler: ChangeHandler,
        *,
        faults: Faults,
        config: PollerConfig | None = None,
    ) -> None:
        self.conn = conn
        self.config = config or PollerConfig()
        self.slot_name = f"supabase_realtime_replication_slot_{secrets.token_hex(4)}"
        self._handler = handler
        self._faults = faults
        self._slot_exists = False
        self._lock = asyncio.Lock()
        self._enabled = asyncio.Event()
        self._enabled.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def slot_exists(self) -> bool:
        """Whether the temporary slot currently exists."""
        return self._slot_exists

    async def start(self) -> None:
        """Create the slot (if the publication has tables) and start polling.

        Changes committed after this returns are captured, provided the publication had a table.
        """
        async with self._lock:
            _, tables = await self._publication()
            if tables:
                await self._create_slot()
        self._task = asyncio.create_task(self._run(), name="localsupabase.realtime.poller")

    async def stop(self) -> None:
        """Stop polling and drop the slot."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._slot_exists and not self.conn.is_closed():
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._drop_slot()

    async def restart(self) -> None:
        """Drop the slot and create a new one, as a restarted Realtime would: unread changes are lost."""
        async with self._lock:
            if self._slot_exists:
                await self._drop_slot()
            _, tables = await self._publication()
            if tables:
                await self._create_slot()

    async def pause(self) -> None:
        """Stop taking changes from the slot; returns once no poll is running. Changes stay in the slot."""
        self._enabled.clear()
        async with self._lock:
            pass

    def resume(self) -> None:
        """Take changes again after :meth:`pause`."""
        self._enabled.set()

    async def poll_once(self) -> PollOutcome:
        """Take one batch from the slot and hand each change to the handler."""
        async with self._lock:
            actions, tables = await self._publication()
            if not tables:
                # Realtime drops the slot when the publication becomes empty.
                if self._slot_exists:
                    await self._drop_slot()
                return PollOutcome.IDLE
            if not self._slot_exists:
                await self._create_slot()
            rows = await self.conn.fetch(
                _GET_CHANGES, self.slot_name, self.config.max_changes, actions, tables
            )
            delivered = False
            for row in rows:
                if self._faults.skip_changes > 0:
                    self._faults.skip_changes -= 1
                    continue
                try:
                    delivered = await self._handler(self.conn, row["data"]) or delivered
                except Exception:
                    # The slot has already moved past this change, so it is lost, as in Realtime.
                    logger.exception("dropping a change that could not be processed")
        if delivered:
            return PollOutcome.DELIVERED
        return PollOutcome.UNDELIVERABLE if rows else PollOutcome.IDLE

    def _delay(self, outcome: PollOutcome) -> float:
        config = self.config
        if outcome is PollOutcome.DELIVERED:
            return 0.0
        if outcome is PollOutcome.UNDELIVERABLE:
            low, high = config.poll_jitter
            return config.poll_interval + random.uniform(low, high)
        if outcome is PollOutcome.IDLE:
            return config.idle_interval
        return config.error_interval

    async def _run(self) -> None:
        while True:
            await self._enabled.wait()
            try:
                outcome = await self.poll_once()
            except Exception:
                # Realtime's poller backs off and tries again; so does this one, whatever went wrong.
                logger.exception("polling the replication slot failed")
                outcome = PollOutcome.FAILED
            await asyncio.sleep(self._delay(outcome))

    async def _publication(self) -> tuple[str, str]:
        row = await self.conn.fetchrow(_PUBLICATION_INFO, PUBLICATION)
        if row is None:
            return "", ""
        return str(row["actions"]), str(row["tables"])

    async def _create_slot(self) -> None:
        await self.conn.execute(
            "select pg_catalog.pg_create_logical_replication_slot($1, 'wal2json', true)", self.slot_name
        )
        self._slot_exists = True

    async def _drop_slot(self) -> None:
        self._slot_exists = False
        await self.conn.execute("select pg_catalog.pg_drop_replication_slot($1)", self.slot_name)
