"""Three ``syncd run`` instances in cluster mode, and editors that keep editing through failures.

Each writer is one editor (the Python `EditorClient`) that owns one scene's ``heading``: it patches
it to ``<name>-<n>`` for n = 1, 2, ..., one edit at a time, and counts an edit once it is
acknowledged (an edit the daemon refuses, such as ``unavailable`` while the project loads on its new
owner, is answered and counted as refused). When its connection closes or an ack does not come, it
reconnects (to its instance, or to the next one that accepts it, as a load balancer would) and the
client resends what is unacknowledged. The counts come from the database:

- ``lost``: acknowledged mutations above the mid that ``syncd_mutations`` records for their client (its
  highest applied), plus scenes whose final heading is not their writer's last acknowledged value;
- ``applied_twice``: heading values written more than once (a trigger logs every change of a heading;
  each edit writes a value of its own, so an edit applied again shows as its value written again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import WebSocketException

from syncd.client import EditorClient
from syncd.client.errors import ClientClosed, EditorError
from syncd.errors import SyncdError
from tests.cluster.conftest import unique
from tests.supabase_mode.conftest import Stack
from tests.support.daemon import DaemonProcess
from tests.support.nats import NatsCluster
from tests.support.waiting import wait_for

TTL = 2.0
"""The lease TTL of the test instances (seconds); renewals every quarter of it."""
ACK_WAIT = 3.0
"""Seconds a writer waits for an ack before it reconnects."""
PAUSE = 0.02
"""Seconds between a writer's edits."""

WRITE_LOG_SQL = """
create table public.test_heading_log (n bigserial primary key, scene_id uuid, heading text);
create function public.test_log_heading() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.heading is distinct from old.heading then
    insert into public.test_heading_log (scene_id, heading) values (new.id, new.heading);
  end if;
  return null;
end
$$;
create trigger test_log_heading after update on public.scenes
  for each row execute function public.test_log_heading();
"""


async def start_instances(
    stack: Stack, nats: NatsCluster, names: Sequence[str] = ("a", "b", "c"), journal: list[str] | None = None
) -> dict[str, DaemonProcess]:
    """Start one instance per name, sharing a fresh lease bucket and journal stream.

    The stream's name is appended to ``journal`` when given.
    """
    shared = {
        "SYNCD_CLUSTER__ENABLED": "true",
        "SYNCD_CLUSTER__NATS_URLS": json.dumps(nats.urls),
        "SYNCD_CLUSTER__LEASE_TTL": str(TTL),
        "SYNCD_CLUSTER__RENEW_INTERVAL": str(TTL / 4),
        "SYNCD_CLUSTER__LEASE_BUCKET": unique("leases"),
        "SYNCD_CLUSTER__JOURNAL_STREAM": unique("JOURNAL"),
        # Streams of one NATS cluster may not share subjects: each test has its own.
        "SYNCD_CLUSTER__SUBJECT_PREFIX": unique("syncd"),
    }
    if journal is not None:
        journal.append(shared["SYNCD_CLUSTER__JOURNAL_STREAM"])
    started = await asyncio.gather(
        *(stack.start_daemon({**shared, "SYNCD_CLUSTER__INSTANCE_ID": name}, name=name) for name in names)
    )
    return dict(zip(names, started, strict=True))


@dataclass(eq=False)
class Writer:
    """One editor editing one scene's heading without pause, through failures."""

    name: str
    project_id: str
    scene_id: str
    urls: list[str]
    editor: EditorClient | None = None
    acked: list[tuple[int, str]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    """Mutations the daemon answered with an error (``unavailable`` while a project loads, ...)."""
    close_codes: list[int | None] = field(default_factory=list)
    reconnects: int = 0
    n: int = 0

    async def connect(self) -> None:
        """Open the first connection, at ``urls[0]``."""
        self.editor = EditorClient(self.urls[0], self.project_id, request_timeout=ACK_WAIT, open_timeout=8)
        await self.editor.connect()

    async def run(self, stop: asyncio.Event) -> None:
        """Edit until ``stop`` is set; the last edit is answered before this returns."""
        while not stop.is_set():
            self.n += 1
            value = f"{self.name}-{self.n}"
            mid = await self._send(value)
            if await self._until_answered(mid):
                self.acked.append((mid, value))
            await asyncio.sleep(PAUSE)

    async def _send(self, value: str) -> int:
        assert self.editor is not None
        while True:
            try:
                return self.editor.send_patch("scenes", self.scene_id, {"heading": value})
            except ClientClosed:
                await self._reconnect()

    async def _until_answered(self, mid: int) -> bool:
        """True once ``mid`` is acknowledged, False if the daemon refused it (an answer, not a loss)."""
        editor = self.editor
        assert editor is not None
        while True:
            try:
                await editor.wait_ack(mid)
                return True
            except EditorError as exc:
                self.refused.append((mid, exc.code))
                return False
            except (ClientClosed, TimeoutError):
                self.close_codes.append(editor.close_code)
                await self._reconnect()  # the client resends the unacknowledged mutation

    async def _reconnect(self) -> None:
        editor = self.editor
        assert editor is not None
        while True:
            self.reconnects += 1
            try:
                await editor.reconnect()
                return
            except (SyncdError, OSError, TimeoutError, WebSocketException):
                self.urls.append(self.urls.pop(0))  # try the next instance, as a load balancer would
                editor.url = self.urls[0]
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        """Close the editor."""
        if self.editor is not None:
            await self.editor.close()


@dataclass(frozen=True)
class Counts:
    """What the database says about the writers' acknowledged edits."""

    acknowledged: int
    lost: int
    applied_twice: int
    refused: int

    def __str__(self) -> str:
        return (
            f"acknowledged={self.acknowledged} lost={self.lost} applied_twice={self.applied_twice}"
            f" refused={self.refused}"
        )


async def settle_and_count(stack: Stack, writers: Sequence[Writer], timeout: float = 20.0) -> Counts:  # noqa: ASYNC109
    """Wait until every writer's last acknowledged heading is saved (or ``timeout``), then count."""
    last = {w.scene_id: w.acked[-1][1] for w in writers if w.acked}

    async def saved() -> bool:
        rows = await stack.pool.fetch(
            "select id::text, heading from public.scenes where id = any($1::uuid[])", list(last)
        )
        return all(last[r["id"]] == r["heading"] for r in rows) and len(rows) == len(last)

    with contextlib.suppress(pytest.fail.Exception):  # what is not saved by then counts as lost below
        await wait_for(saved, lambda: "every last acknowledged heading to be saved", timeout)
    recorded = {
        (r["project_id"], r["client_id"]): int(r["mid"])
        for r in await stack.pool.fetch("select project_id::text, client_id, mid from public.syncd_mutations")
    }
    lost = 0
    for w in writers:
        assert w.editor is not None
        highest = recorded.get((w.project_id, w.editor.client_id), -1)
        lost += sum(mid > highest for mid, _ in w.acked)
    finals = {
        r["id"]: r["heading"]
        for r in await stack.pool.fetch(
            "select id::text, heading from public.scenes where id = any($1::uuid[])", list(last)
        )
    }
    lost += sum(finals.get(scene_id) != value for scene_id, value in last.items())
    twice = await stack.pool.fetchval(
        "select coalesce(sum(c - 1), 0) from (select count(*) c from public.test_heading_log"
        " group by scene_id, heading having count(*) > 1) d"
    )
    refused = sum(len(w.refused) for w in writers)
    return Counts(sum(len(w.acked) for w in writers), lost, int(twice), refused)


def took(daemons: Sequence[DaemonProcess], project_id: str, before: dict[str, int]) -> str | None:
    """The instance that logged taking ``project_id`` more often than ``before`` says, if any."""
    for daemon in daemons:
        if daemon.stderr.count(f"took project {project_id}") > before.get(str(daemon.state_dir), 0):
            return daemon.state_dir.name
    return None


def took_counts(daemons: Sequence[DaemonProcess], project_id: str) -> dict[str, int]:
    """How many times each instance logged taking ``project_id`` so far."""
    return {str(d.state_dir): d.stderr.count(f"took project {project_id}") for d in daemons}
