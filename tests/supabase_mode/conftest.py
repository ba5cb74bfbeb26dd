"""Fixtures of the Supabase-mode tests: the stand-in, ``syncd run`` in Supabase mode, editors, a renderer.

Each test gets its own database (cloned from the template), a stand-in in front of it, and daemons that
run as real processes with ``SUPABASE_URL`` and ``SUPABASE_SERVICE_KEY`` pointing at the stand-in. The
stand-in runs on this test's event loop, so nothing here blocks the loop: processes start in a thread
and the CLI runs as an asyncio subprocess. Waits poll a condition until a deadline; nothing sleeps for
a fixed time to let something happen.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import httpx
import pytest
from supabase import AClient, AsyncClientOptions, acreate_client

from localsupabase.app import LocalSupabase
from syncd.client import EditorClient
from syncd.core.schema import Table
from tests.support.daemon import FAST_SAVES, DaemonProcess, syncd_command
from tests.support.env import clean_environ, command_stderr
from tests.support.waiting import wait_for

SUPABASE_PY_DEPRECATIONS = pytest.mark.filterwarnings(
    "ignore:The '(timeout|verify|proxy)' parameter is deprecated:DeprecationWarning"
)
"""For a test that runs supabase-py in the test process: supabase-py passes options that postgrest-py
now warns about (the daemon process does the same)."""

WAIT = 10.0
"""Seconds any single expected outcome may take (Realtime reconnects back off for a second or two)."""

SLOW_SAVES = {"SYNCD_DEBOUNCE__QUIET": "1.0", "SYNCD_DEBOUNCE__MAX_WAIT": "3"}
"""A debounce long enough to make another writer's change while an edit is still pending."""

NO_RESYNC = {"SYNCD_SUPABASE__RESYNC_INTERVAL": "600"}
"""No anti-entropy within a test: what converges did so through Realtime and its re-reads."""

QUICK_RESYNC = {"SYNCD_SUPABASE__RESYNC_INTERVAL": "1"}
"""Anti-entropy every second, for losses that nothing but a re-read can repair."""

SYNCED: tuple[Table, ...] = ("projects", "scenes", "clips")

# Every syncd_apply call records its mutation ids with one insert statement (even one that inserts or
# raises nothing), so a statement-level trigger on syncd_mutations logs exactly one row per call, in the
# call's transaction.
APPLY_LOG_SQL = """
create table public.test_apply_log (
  n bigserial primary key,
  txid bigint not null default txid_current(),
  at timestamptz not null default clock_timestamp()
);
create function public.test_log_apply() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.test_apply_log default values;
  return null;
end
$$;
create trigger test_log_apply after insert on public.syncd_mutations
  for each statement execute function public.test_log_apply();
"""


class Stack:
    """What one test runs against: the stand-in, its database, daemons, editors and a renderer.

    Args:
        supabase: the running stand-in.
        tmp_path: the test's temporary folder (daemons' state directories go there).
    """

    def __init__(self, supabase: LocalSupabase, tmp_path: Path) -> None:
        self.supabase = supabase
        self.tmp_path = tmp_path
        self.daemons: list[DaemonProcess] = []
        self.editors: list[EditorClient] = []
        self._http: list[httpx.AsyncClient] = []
        self._renderer: AClient | None = None
        self._probe: httpx.AsyncClient | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """A superuser pool on the project's database: "another writer" and the tests' own reads."""
        return self.supabase.pool

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a Supabase-mode syncd process."""
        return {
            "SUPABASE_URL": self.supabase.url,
            "SUPABASE_SERVICE_KEY": self.supabase.service_key,
            "SUPABASE_JWT_SECRET": self.supabase.jwt_secret,
            "SYNCD_AUTH__ALLOW_ANONYMOUS": "true",
            "SYNCD_DAEMON__PROJECT_IDLE_TIMEOUT": "1",
            **FAST_SAVES,
            **(extra or {}),
        }

    async def start_daemon(
        self, env: Mapping[str, str] | None = None, *, name: str = "state"
    ) -> DaemonProcess:
        """Start ``syncd run`` in Supabase mode; return once it prints its address."""
        daemon = DaemonProcess(self.tmp_path / name, env=self.env(env))
        self.daemons.append(daemon)
        await asyncio.to_thread(daemon.start)
        return daemon

    async def editor(self, daemon: DaemonProcess, project_id: str, **options: Any) -> EditorClient:
        """An editor connected to ``project_id`` (closed after the test)."""
        client = EditorClient(daemon.url, project_id, request_timeout=WAIT, **options)
        self.editors.append(client)
        await client.connect()
        return client

    async def renderer(self) -> AClient:
        """A supabase-py client with the service key, as the renderer uses it (``save_clip_record``)."""
        if self._renderer is None:
            http = httpx.AsyncClient(timeout=10)
            self._http.append(http)
            options = AsyncClientOptions(httpx_client=http)
            self._renderer = await acreate_client(
                self.supabase.url, self.supabase.service_key, options=options
            )
        return self._renderer

    async def create_project(self, title: str = "Film", scenes: int = 2) -> tuple[str, list[str]]:
        """Create a project with ``scenes`` scenes through supabase-py; return its id and scene ids."""
        client = await self.renderer()
        created = await client.table("projects").insert({"title": title}).execute()
        project = created.data[0]
        assert isinstance(project, dict)
        project_id = str(project["id"])
        scene_ids: list[str] = []
        if scenes:
            rows = [
                {"project_id": project_id, "scene_index": i, "heading": f"Scene {i + 1}", "duration": 5.0}
                for i in range(scenes)
            ]
            inserted = await client.table("scenes").insert(rows).execute()
            found: list[dict[str, Any]] = [dict(row) for row in inserted.data if isinstance(row, dict)]
            scene_ids = [str(row["id"]) for row in sorted(found, key=lambda row: int(row["scene_index"]))]
        return project_id, scene_ids

    async def readyz(self, daemon: DaemonProcess) -> tuple[int, dict[str, Any]]:
        """``GET /readyz``: the status and the JSON body."""
        if self._probe is None:
            # The daemon closes each HTTP connection after its answer: no keep-alive to trip over.
            self._probe = httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_keepalive_connections=0))
            self._http.append(self._probe)
        answer = await self._probe.get(f"{daemon.http}/readyz")
        body: dict[str, Any] = answer.json()
        return answer.status_code, body

    async def wait_ready(self, daemon: DaemonProcess, timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Wait until ``/readyz`` answers 200 (Realtime connected and every open project subscribed)."""
        answers: list[tuple[int, dict[str, Any]]] = []

        async def ready() -> bool:
            answers.append(await self.readyz(daemon))
            return answers[-1][0] == 200

        await wait_for(ready, lambda: f"/readyz to answer 200; last answer {answers[-1:]}", timeout)

    async def db_rows(self, project_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The project's rows as the database holds them, JSON-shaped as PostgREST sends them."""
        found = await self.pool.fetch(
            "select 'projects' as tbl, to_jsonb(p)::text as data from public.projects p where p.id = $1::uuid"
            " union all select 'scenes', to_jsonb(s)::text from public.scenes s where s.project_id = $1::uuid"
            " union all select 'clips', to_jsonb(c)::text from public.clips c where c.project_id = $1::uuid",
            project_id,
        )
        rows: dict[str, dict[str, dict[str, Any]]] = {table: {} for table in SYNCED}
        for record in found:
            row = json.loads(record["data"])
            rows[str(record["tbl"])][str(row["id"])] = row
        return rows

    async def apply_calls(self) -> int:
        """How many ``syncd_apply`` calls have committed (needs :data:`APPLY_LOG_SQL` installed)."""
        return int(await self.pool.fetchval("select count(*) from public.test_apply_log"))

    async def close(self) -> None:
        """Close editors and HTTP clients, stop daemons."""
        for editor in self.editors:
            await editor.close()
        for daemon in self.daemons:
            await asyncio.to_thread(daemon.stop)
        for http in self._http:
            await http.aclose()


StackFactory: TypeAlias = Callable[[], Awaitable[Stack]]


@pytest.fixture
async def stack(supabase_db: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stand-in over a fresh database (with the apply log), ready for daemons and editors."""
    conn = await asyncpg.connect(supabase_db)
    try:
        await conn.execute(APPLY_LOG_SQL)
    finally:
        await conn.close()
    async with LocalSupabase(supabase_db) as supabase:
        # Realtime retries a failed subscription after 5-10 s; a second keeps the fault tests short.
        supabase.realtime.config.subscribe_retry_delay = (0.5, 1.0)
        test_stack = Stack(supabase, tmp_path)
        try:
            yield test_stack
        finally:
            await test_stack.close()


HIDDEN = frozenset({"created_at", "updated_at", "version"})
"""Columns editors do not see (``version``) or see in another text form (the timestamps)."""


def visible(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without the columns of :data:`HIDDEN`."""
    return {k: v for k, v in row.items() if k not in HIDDEN}


def view_of(editor: EditorClient) -> dict[str, dict[str, dict[str, Any]]]:
    """An editor's view in the shape of :meth:`Stack.db_rows`, timestamps left out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for table in SYNCED:
        out[table] = {row_id: visible(row) for row_id, row in editor.view.rows(table).items()}
    return out


async def converged(
    stack: Stack,
    project_id: str,
    editors: list[EditorClient],
    timeout: float = WAIT,  # noqa: ASYNC109
) -> None:
    """Wait until every editor's view equals the database's rows of the project (timestamps aside)."""
    differing: list[str] = []

    async def agree() -> bool:
        db = await stack.db_rows(project_id)
        expected = {table: {k: visible(v) for k, v in rows.items()} for table, rows in db.items()}
        views = [view_of(editor) for editor in editors]
        differing[:] = [f"\n db   {expected}\n view {view}" for view in views if view != expected][:1]
        return not differing

    await wait_for(agree, lambda: "the editors to converge:" + "".join(differing), timeout)


async def syncd_cli(env: Mapping[str, str], state_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run ``syncd ARGS`` as an asyncio subprocess (the stand-in serves on this loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *syncd_command(state_dir, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean_environ(), **env},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), command_stderr(err.decode())


def new_id() -> str:
    """A fresh row id."""
    return str(uuid.uuid4())
