"""SupabaseBackend: reads and writes through supabase-py, hears changes through realtime-py.

Realtime is a hint, not a log (supabase-realtime.md): it uses a temporary slot, reports SUBSCRIBED
before it listens, and realtime-py has reconnect traps. So this adapter:

- opens one channel per open project, with bindings on ``projects`` (``id=eq.<id>``), ``scenes`` and
  ``clips`` (``project_id=eq.<id>``); the callbacks only put the payload on a queue (realtime-py calls
  them synchronously, inline in its socket loop);
- asks the daemon to re-read a project after every "Subscribed to PostgreSQL", after every
  CHANNEL_ERROR→SUBSCRIBED, and every ``resync_interval`` seconds;
- makes a new channel when realtime-py reports CLOSED without being asked (the stale ``phx_close``
  after a rejoin kills the channel object) on a topic of its own, after leaving the old one;
- opens the Realtime socket at start (``/readyz`` reports it), reopens it when realtime-py gave up, and
  says in the log when it is lost and when it is back;
- re-reads by primary key a change that comes with ``errors`` set (413) or without its columns.

Writes go out as one ``rpc("syncd_apply")`` per flush; network errors, timeouts and 5xx answers are
retryable, anything else is not (the core keeps the edits either way). Reads are not retried inside
supabase-py: its PostgREST client would retry a failed read three times, 7 s of sleeping within one
call, before syncd heard of the failure. Each read's caller has its own answer to a failure instead
(a load retries with the writer's backoff, a re-read waits for the next, an editor or HTTP caller is
told ``unavailable`` at once).

A one-shot command (``syncd project``, ``syncd import``) opens the backend with ``one_shot``: no Realtime
socket and no background task, and an unreachable Supabase is an error at once, not a retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
from postgrest.exceptions import APIError
from realtime import AsyncRealtimeChannel, RealtimeSubscribeStates
from realtime.message import SuccessSystemPayload
from realtime.types import RealtimePostgresChangesListenEvent
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase.types import RealtimeClientOptions

from syncd.backend import DocumentBackend, RemoteSink
from syncd.config import SupabaseSettings, WriterSettings
from syncd.core.backoff import Backoff
from syncd.core.ids import ProjectId, RowId
from syncd.core.inputs import RemoteDelete, RemoteUpsert
from syncd.core.schema import SIDE_TABLES, TABLES, SideTable, Table, table_named
from syncd.errors import ConfigError, EditRejected, StaleOwner, UpstreamError, WriteError
from syncd.pages import every_row
from syncd.wire import ChangeOp

log = logging.getLogger(__name__)

SideSink = Callable[[str, SideTable, ChangeOp, dict[str, Any]], None]
"""Where changes of exports and audio files go: project, table, what happened, the row."""

_RETRYABLE_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
"""Connection trouble, serialization failures, resources, operator intervention, system errors."""
STALE_OWNER_SQLSTATE = "SYF01"
"""What ``syncd_apply`` raises for a batch whose fence is below the project's highest (cluster mode)."""
_RETRYABLE_POSTGREST = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
"""PostgREST's "cannot reach the database" family (503/504)."""

_IDS_PER_REQUEST = 100
"""Ids per ``in.(...)`` filter: they travel in the URL, which servers and proxies cap at a few KB."""

WATCHDOG_INTERVAL = 5.0
"""Seconds between checks that the Realtime client is still connected."""


_KEY_REFUSED = frozenset({"401", "403", "PGRST301", "PGRST302"})
"""PostgREST's answers to a key it does not accept."""
_NO_FUNCTION = "PGRST202"
"""PostgREST's code for a function it does not know (not in the database, or not in its schema cache)."""
_NO_PROJECT = "00000000-0000-0000-0000-000000000000"
"""A project id no project has: the start-up probe's argument."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed request may succeed if sent again: network trouble, timeouts, 5xx."""
    if isinstance(exc, httpx.TransportError | TimeoutError):
        return True
    if isinstance(exc, APIError):
        code = exc.code or ""
        if len(code) == 3 and code.isdigit():  # an HTTP status; a SQLSTATE has five characters
            return int(code) >= 500 or int(code) in (408, 429)
        return code in _RETRYABLE_POSTGREST or code[:2] in _RETRYABLE_SQLSTATE_CLASSES
    return False


@dataclass
class SocketLog:
    """syncd's own lines on the Realtime socket's state: one when it is lost, one when it is back.

    realtime-py logs every failed attempt at ERROR and the channels report their errors, but neither
    says what the daemon does about it. The watchdog reports what it sees on each pass; a drop it does
    not see (realtime-py back within one pass) is not worth a line.

    Args:
        url: the Supabase URL, for the lines.
        grace: seconds a socket that has never been up may take before it is reported down.
    """

    url: str
    grace: float
    down_since: float | None = None
    reported: bool = False
    ever_up: bool = False

    def observe(self, connected: bool, now: float) -> None:
        """Log a change of state seen at ``now`` (seconds on any monotonic clock)."""
        if connected:
            if self.reported:
                # No duration: a pass sees a drop up to one interval late; the log's times are exact.
                log.info("Realtime socket to %s is %s", self.url, "back" if self.ever_up else "open")
            self.ever_up, self.down_since, self.reported = True, None, False
            return
        if self.down_since is None:
            self.down_since = now
        if self.reported:
            return
        if self.ever_up:
            log.warning(
                "Realtime socket to %s lost; reconnecting. Edits are still taken and saved; "
                "other writers' changes reach the editors once it is back",
                self.url,
            )
        elif now - self.down_since >= self.grace:
            log.warning("Realtime socket to %s cannot be opened yet; retrying", self.url)
        else:
            return
        self.reported = True


@dataclass
class _Follow:
    """One open project's channel and what the adapter knows of it."""

    project_id: str
    channel: AsyncRealtimeChannel | None = None
    subscribed: bool = False
    errored: bool = False
    leaving: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class SupabaseBackend(DocumentBackend):
    """The Supabase backend of design.md §3.

    Args:
        settings: URL and service key (required), resync interval.
        writer: request timeout.
        one_shot: for a command that reads and writes and exits: no Realtime socket, no background
            task, and entering fails at once (``UpstreamError``) when Supabase cannot be reached.
    """

    name = "supabase"

    def __init__(self, settings: SupabaseSettings, writer: WriterSettings, *, one_shot: bool = False) -> None:
        if settings.url is None or settings.service_key is None:
            raise ConfigError("Supabase mode needs supabase.url and SUPABASE_SERVICE_KEY")
        self._settings = settings
        self._one_shot = one_shot
        self._timeout = writer.request_timeout
        self._sink: RemoteSink | None = None
        self._unverified: str | None = "the service key was not tried yet"
        self._client: AsyncClient | None = None
        self._follows: dict[str, _Follow] = {}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._topics = 0
        self.on_side: SideSink | None = None

    @property
    def client(self) -> AsyncClient:
        """The supabase-py client (for the project commands)."""
        assert self._client is not None, "SupabaseBackend used outside its context"
        return self._client

    async def __aenter__(self) -> Self:
        assert self._settings.url is not None
        assert self._settings.service_key is not None
        options = AsyncClientOptions(
            postgrest_client_timeout=self._timeout,
            postgrest_client_retry=False,
            realtime=RealtimeClientOptions(auto_reconnect=True, max_retries=10, initial_backoff=1.0),
        )
        self._client = await acreate_client(
            self._settings.url, self._settings.service_key.get_secret_value(), options=options
        )
        try:
            await self._verify()
        except ConfigError:
            await self.__aexit__(None, None, None)
            raise
        except (APIError, httpx.HTTPError) as exc:
            self._unverified = f"Supabase at {self._settings.url} is not reachable: {_describe(exc)}"
            if self._one_shot:
                await self.__aexit__(None, None, None)
                raise UpstreamError(self._unverified) from None
            log.warning("%s; retrying", self._unverified)
            self._tasks.append(asyncio.create_task(self._verify_until_ok(), name="syncd.supabase.verify"))
        if self._one_shot:
            return self
        self._tasks += [
            asyncio.create_task(self._worker(), name="syncd.supabase.changes"),
            asyncio.create_task(self._watchdog(), name="syncd.supabase.watchdog"),
            asyncio.create_task(self._resync_timer(), name="syncd.supabase.resync"),
        ]
        return self

    async def _verify(self) -> None:
        """See :func:`_probe`; raises as it does. Marks the backend verified."""
        await _probe(self.client, str(self._settings.url))
        self._unverified = None
        # A one-shot command's stderr is for its errors; the daemon's log says when it can serve.
        log.log(
            logging.DEBUG if self._one_shot else logging.INFO,
            "Supabase backend ready: %s",
            self._settings.url,
        )

    async def _verify_until_ok(self) -> None:
        backoff = Backoff(1.0, 30.0, random.random)
        while self._unverified is not None:
            await asyncio.sleep(backoff.next_delay())
            try:
                await self._verify()
            except (APIError, httpx.HTTPError) as exc:
                log.warning("Supabase at %s is still not reachable: %s", self._settings.url, _describe(exc))
            except ConfigError as exc:
                # Keys are checked before the daemon is ready, so this is a key revoked meanwhile.
                self._unverified = str(exc)
                log.error("%s", exc)
                return

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        for follow in list(self._follows.values()):
            await self.unfollow(ProjectId(follow.project_id))
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.realtime.close()
            with contextlib.suppress(Exception):
                await self._client.postgrest.aclose()
        self._client = None

    # -- reads and writes ---------------------------------------------------------------------------

    async def read_project(self, project_id: str) -> dict[str, Any]:
        """Read a project with its scenes and clips, and its highest applied mid per client (``applied``)."""
        c = self.client
        try:
            project, scenes, clips, applied = await asyncio.gather(
                c.table("projects").select("*").eq("id", project_id).execute(),
                every_row(lambda: _of_project(c, "scenes", project_id).order("scene_index").order("id")),
                every_row(lambda: _of_project(c, "clips", project_id).order("order_index").order("id")),
                c.rpc("syncd_applied_mids", {"project": project_id}).execute(),
            )
        except (APIError, httpx.HTTPError) as exc:
            raise UpstreamError(f"reading project {project_id} failed: {_describe(exc)}") from exc
        return {
            "project": project.data[0] if project.data else None,
            "scenes": scenes,
            "clips": clips,
            "applied": applied.data,
        }

    async def project_owner(self, project_id: ProjectId) -> tuple[bool, str | None]:
        """Whether a project exists, and its ``user_id``."""
        try:
            found = await self.client.table("projects").select("user_id").eq("id", project_id).execute()
        except (APIError, httpx.HTTPError) as exc:
            raise UpstreamError(f"reading project {project_id} failed: {_describe(exc)}") from exc
        rows = _rows(found.data)
        if not rows:
            return False, None
        owner = rows[0].get("user_id")
        return True, owner if isinstance(owner, str) else None

    async def apply_encoded(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one write batch in its JSON form with ``syncd_apply``.

        Raises:
            StaleOwner: the batch's ``fence`` is below the project's highest (SQLSTATE SYF01).
            WriteError: with ``retryable`` set for network errors, timeouts and 5xx answers.
        """
        try:
            answer = await self.client.rpc("syncd_apply", {"batch": dict(batch)}).execute()
        except (APIError, httpx.HTTPError) as exc:
            if isinstance(exc, APIError) and exc.code == STALE_OWNER_SQLSTATE:
                raise StaleOwner(f"syncd_apply refused the batch: {exc.message}") from exc
            raise WriteError(f"syncd_apply failed: {_describe(exc)}", retryable=is_retryable(exc)) from exc
        data = answer.data
        if not isinstance(data, dict):
            raise WriteError(f"syncd_apply answered {type(data).__name__}, not an object", retryable=False)
        return data

    async def create_project(self, title: str, user_id: str | None = None) -> dict[str, Any]:
        """Insert a project and return its row.

        Raises:
            EditRejected: ``bad_request``, the owner is not a user of the Supabase project.
            UpstreamError: Supabase refused otherwise, or cannot be reached.
        """
        row: dict[str, Any] = {"title": title, "user_id": user_id}
        try:
            created = await self.client.table("projects").insert(row).execute()
        except APIError as exc:
            if exc.code == "23503":  # projects.user_id references auth.users
                raise EditRejected("bad_request", f"the Supabase project has no user {user_id}") from None
            raise UpstreamError(f"creating the project failed: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"creating the project failed: {_describe(exc)}") from exc
        return _rows(created.data)[0]

    async def insert_missing(self, table: str, rows: list[dict[str, Any]]) -> list[str]:
        """Insert the ``projects`` or ``voices`` rows whose id is free, each with the id it carries.

        For ``syncd import``, which keeps given ids; a row whose id is taken is left as it is.

        Returns:
            The ids that were inserted.

        Raises:
            WriteError: another table, or the database refused the rows.
        """
        if table not in ("projects", "voices"):
            raise WriteError(f"insert_missing does not write {table}", retryable=False)
        if not rows:
            return []
        try:
            answer = await (
                self.client.table(table).upsert(rows, on_conflict="id", ignore_duplicates=True).execute()
            )
        except (APIError, httpx.HTTPError) as exc:
            raise WriteError(f"inserting {table} failed: {_describe(exc)}", retryable=False) from exc
        return [row["id"] for row in _rows(answer.data)]

    async def row_projects(self, table: Table, ids: list[str]) -> dict[str, str]:
        """``{row id: project id}`` of the rows among ``ids`` that ``table`` (scenes or clips) holds.

        For ``syncd import``, which must not write a row whose id another project holds.

        Raises:
            UpstreamError: the rows cannot be read.
        """
        found: dict[str, str] = {}
        try:
            for start in range(0, len(ids), _IDS_PER_REQUEST):
                answer = await (
                    self.client.table(table)
                    .select("id,project_id")
                    .in_("id", ids[start : start + _IDS_PER_REQUEST])
                    .execute()
                )
                found.update((str(row["id"]), str(row["project_id"])) for row in _rows(answer.data))
        except (APIError, httpx.HTTPError) as exc:
            raise UpstreamError(f"reading {table} failed: {_describe(exc)}") from exc
        return found

    async def list_projects(self) -> list[dict[str, Any]]:
        """Every project, newest first."""
        try:
            return await every_row(
                lambda: self.client.table("projects").select("*").order("created_at", desc=True).order("id")
            )
        except (APIError, httpx.HTTPError) as exc:
            raise UpstreamError(f"listing projects failed: {_describe(exc)}") from exc

    def readiness(self) -> tuple[bool, str]:
        """Ready when Realtime is connected and every open project's channel is subscribed."""
        if self._client is None:
            return False, "not started"
        if self._unverified is not None:
            return False, self._unverified
        if not self._client.realtime.is_connected:
            return False, "Realtime is not connected"
        waiting = [f.project_id for f in self._follows.values() if not f.subscribed]
        if waiting:
            return False, f"Realtime not yet subscribed for {len(waiting)} project(s)"
        if not self._follows:
            return True, "Realtime connected; no project open"
        return True, f"Realtime subscribed for {len(self._follows)} project(s)"

    def feed_connected(self) -> bool | None:
        """Whether the Realtime socket is connected."""
        return self._client is not None and bool(self._client.realtime.is_connected)

    # -- the change feed ----------------------------------------------------------------------------

    async def follow(self, project_id: ProjectId, sink: RemoteSink) -> None:
        """Open a channel for the project; a re-read is requested once Realtime listens."""
        self._sink = sink
        if project_id in self._follows:
            return
        follow = _Follow(project_id)
        self._follows[project_id] = follow
        await self._subscribe(follow)

    async def unfollow(self, project_id: ProjectId) -> None:
        """Leave the project's channel."""
        follow = self._follows.pop(project_id, None)
        if follow is None or follow.channel is None:
            return
        follow.leaving = True
        with contextlib.suppress(Exception):
            await follow.channel.unsubscribe()

    async def _subscribe(self, follow: _Follow) -> None:
        client = self.client
        pid = follow.project_id
        # A topic of its own per attempt: a new channel on the old topic would be a duplicate join, which
        # the server answers with another phx_close that realtime-py takes for the new channel.
        self._topics += 1
        channel = client.channel(f"syncd:{pid}:{self._topics}")
        follow.channel = channel
        follow.subscribed = False

        def on_change(payload: Any) -> None:
            self._queue.put_nowait((pid, payload))

        def on_system(payload: SuccessSystemPayload) -> None:
            self._on_system(follow, payload)

        def on_state(state: RealtimeSubscribeStates, err: Exception | None) -> None:
            self._on_state(follow, channel, state, err)

        for table in (*TABLES, *SIDE_TABLES):
            column = "id" if table == "projects" else "project_id"
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.All,
                schema="public",
                table=table,
                filter=f"{column}=eq.{pid}",
                callback=on_change,
            )
        channel.on_system(on_system)
        try:
            await channel.subscribe(on_state)
        except Exception as exc:  # realtime-py raises bare exceptions while connecting
            log.warning("subscribing to project %s failed (%s); the watchdog retries", pid, exc)

    def _on_system(self, follow: _Follow, payload: SuccessSystemPayload) -> None:
        if payload.message == "Subscribed to PostgreSQL":
            follow.subscribed = True
            log.info("Realtime listens for project %s; re-reading it", follow.project_id)
            self._reread(follow.project_id)

    def _on_state(
        self,
        follow: _Follow,
        channel: AsyncRealtimeChannel,
        state: RealtimeSubscribeStates,
        err: Exception | None,
    ) -> None:
        if follow.channel is not channel:
            return
        if state == RealtimeSubscribeStates.SUBSCRIBED:
            if follow.errored:
                follow.errored = False
                log.info("Realtime channel of project %s rejoined; re-reading it", follow.project_id)
                self._reread(follow.project_id)
        elif state in (RealtimeSubscribeStates.CHANNEL_ERROR, RealtimeSubscribeStates.TIMED_OUT):
            follow.errored = True
            follow.subscribed = False
            log.warning("Realtime channel of project %s: %s (%s)", follow.project_id, state.value, err)
        elif state == RealtimeSubscribeStates.CLOSED and not follow.leaving:
            # Not asked for: a stale phx_close after a rejoin (supabase-realtime.md §3.4). The channel
            # object is dead for good, so make a new one.
            follow.subscribed = False
            log.warning("Realtime channel of project %s closed unasked; making a new one", follow.project_id)
            follow.channel = None  # the dead channel's later callbacks are ignored from here on
            task = asyncio.get_running_loop().create_task(self._resubscribe(follow, channel))
            follow.tasks.add(task)
            task.add_done_callback(follow.tasks.discard)

    async def _resubscribe(self, follow: _Follow, dead: AsyncRealtimeChannel) -> None:
        # The server may still hold the channel that the stale phx_close was not meant for: leave it,
        # or it keeps sending every change to a topic nobody listens to.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                await dead.unsubscribe()
        if self._follows.get(follow.project_id) is follow:
            await self._subscribe(follow)

    def _reread(self, project_id: str) -> None:
        if self._sink is not None:
            self._sink(ProjectId(project_id), None)

    async def _worker(self) -> None:
        while True:
            project_id, payload = await self._queue.get()
            try:
                await self._deliver(project_id, payload)
            except (UpstreamError, APIError, httpx.HTTPError) as exc:
                log.warning("a change of project %s could not be read (%s); re-reading it", project_id, exc)
                self._reread(project_id)

    async def _deliver(self, project_id: str, payload: Mapping[str, Any]) -> None:
        data = payload.get("data") or {}
        if data.get("table") in SIDE_TABLES:
            self._deliver_side(project_id, data)
            return
        table = _table(data.get("table"))
        if table is None or self._sink is None or project_id not in self._follows:
            return
        kind = data.get("type")
        if kind == "DELETE":
            old = data.get("old_record") or {}
            row_id = old.get("id")
            if isinstance(row_id, str):
                version = old.get("version")
                self._sink(ProjectId(project_id), RemoteDelete(table, RowId(row_id), version))
            else:
                self._reread(project_id)
            return
        record = data.get("record") or {}
        if data.get("errors") or "version" not in record or "id" not in record:
            # Error 413 (payload too large) or columns left out: read the row itself.
            row_id = record.get("id")
            if not isinstance(row_id, str):
                self._reread(project_id)
                return
            found = _rows((await self.client.table(table).select("*").eq("id", row_id).execute()).data)
            if found:
                self._sink(ProjectId(project_id), RemoteUpsert(table, found[0]))
            else:
                self._sink(ProjectId(project_id), RemoteDelete(table, RowId(row_id)))
            return
        self._sink(ProjectId(project_id), RemoteUpsert(table, record))

    def _deliver_side(self, project_id: str, data: Mapping[str, Any]) -> None:
        """An export or audio file changed: pass the row to :attr:`on_side` (the host's side rows)."""
        table = SIDE_TABLES[SIDE_TABLES.index(data["table"])]
        kind = data.get("type")
        row = (data.get("old_record") if kind == "DELETE" else data.get("record")) or {}
        if self.on_side is None or project_id not in self._follows or not isinstance(row.get("id"), str):
            return
        op: ChangeOp = "delete" if kind == "DELETE" else "insert" if kind == "INSERT" else "update"
        self.on_side(project_id, table, op, dict(row))

    async def _watchdog(self) -> None:
        """Keep the Realtime socket up: open it at start, and reopen it when realtime-py gave up.

        realtime-py stops reconnecting after ``max_retries`` attempts and then never tries again, so a
        long outage would leave the daemon deaf for good without this loop.
        """
        states = SocketLog(str(self._settings.url), grace=WATCHDOG_INTERVAL)
        connecting: asyncio.Task[None] | None = None
        try:
            while True:
                realtime = self.client.realtime
                # connect() retries for minutes; it runs beside this loop so that the log follows the
                # socket while it does.
                states.observe(realtime.is_connected, asyncio.get_running_loop().time())
                if not realtime.is_connected and (connecting is None or connecting.done()):
                    connecting = asyncio.create_task(self._connect(states), name="syncd.supabase.connect")
                await asyncio.sleep(WATCHDOG_INTERVAL)
        finally:
            if connecting is not None:
                connecting.cancel()

    async def _connect(self, states: SocketLog) -> None:
        realtime = self.client.realtime
        try:
            await realtime.connect()
        except Exception as exc:  # realtime-py raises bare exceptions after its retries
            log.warning("Realtime connect failed: %s", exc)
            return
        states.observe(realtime.is_connected, asyncio.get_running_loop().time())
        for follow in list(self._follows.values()):
            if follow.channel is None or follow.channel.topic not in realtime.channels:
                await self._subscribe(follow)

    async def _resync_timer(self) -> None:
        """Anti-entropy: re-read every open project now and then, whatever Realtime said."""
        while True:
            await asyncio.sleep(self._settings.resync_interval)
            for project_id in list(self._follows):
                self._reread(project_id)


async def _probe(client: AsyncClient, url: str) -> None:
    """Read one row with the service key, and call one of syncd's functions: proof that the URL
    answers, the key is accepted and syncd's migrations are applied.

    Raises:
        ConfigError: Supabase refused the key, or the database lacks syncd's functions.
        APIError, httpx.HTTPError: the request failed otherwise (retried by the caller).
    """
    try:
        await client.table("projects").select("id").limit(1).execute()
    except APIError as exc:
        if exc.code in _KEY_REFUSED or "JWT" in (exc.message or ""):
            raise ConfigError(f"SUPABASE_SERVICE_KEY was refused by {url} ({_describe(exc)})") from None
        raise
    # Without syncd's migrations every project would fail to open, editor after editor, while the
    # daemon reported itself ready; a read-only call of one of its functions tells at once.
    try:
        await client.rpc("syncd_applied_mids", {"project": _NO_PROJECT}).execute()
    except APIError as exc:
        if exc.code == _NO_FUNCTION:
            raise ConfigError(
                f"the database of {url} lacks syncd's database functions (syncd_applied_mids): apply "
                "the SQL files of supabase/migrations to it (`supabase db push`), then start syncd again"
            ) from None
        raise


def _of_project(client: Any, table: str, project_id: str) -> Any:
    return client.table(table).select("*").eq("project_id", project_id)


def _rows(data: object) -> list[dict[str, Any]]:
    """PostgREST's answer as a list of rows.

    Raises:
        UpstreamError: the answer is not a list of objects.
    """
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UpstreamError(f"expected a list of rows, got {type(data).__name__}")
    return data


def _table(name: object) -> Table | None:
    try:
        return table_named(name)
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    """A one-line reason without request headers (they hold the service key)."""
    if isinstance(exc, APIError):
        return f"{exc.code}: {exc.message}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
