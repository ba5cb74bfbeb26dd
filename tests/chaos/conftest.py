"""Fixtures of the chaos suite: daemons to kill, the Supabase stand-in with its faults, a small disk, and
the summary printed at the end of the session (one line per scenario: acknowledged, lost, applied twice).

Every scenario draws its fault moments from a random generator seeded by ``CHAOS_SEED`` (a fresh seed
when unset); the summary prints the seed, so a run can be repeated with ``CHAOS_SEED=<seed>``.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import pytest
from aiohttp import web

from localsupabase.app import LocalSupabase
from localsupabase.rest import RestApi, unavailable
from tests.chaos.stores import PostgresStore, Store
from tests.chaos.workload import Counts, Workload
from tests.support.daemon import FAST_SAVES, DaemonProcess
from tests.support.disk import small_tmpfs

MIN_ACKNOWLEDGED = 50
"""Fewer acknowledged edits than this means the scenario did not put the daemon under load."""

DISK_BYTES = 3 * 1024 * 1024
"""Size of the tmpfs of the full-disk scenario: below SQLite's 4 MB WAL checkpoint, so the outbox's
write-ahead log only grows while the daemon runs, and a full disk fails its next commit."""

_REPORT = pytest.StashKey[list[str]]()
_SEED = pytest.StashKey[int]()


# ---- the summary -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """The session's seed: ``CHAOS_SEED`` when set, else a fresh one."""
    text = os.environ.get("CHAOS_SEED")
    seed = int(text) if text else random.SystemRandom().randrange(2**32)
    request.config.stash[_SEED] = seed
    return seed


Report: TypeAlias = Callable[[Counts], None]


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Report:
    """Record a scenario's counts for the summary at the end of the session."""
    lines = request.config.stash.setdefault(_REPORT, [])
    return lambda counts: lines.append(counts.line())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the chaos counts, one line per scenario that ran."""
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("chaos")
        seed = config.stash.get(_SEED, None)
        terminalreporter.write_line(f"seed {seed} (CHAOS_SEED={seed} repeats its random choices)")
        for line in lines:
            terminalreporter.write_line(line)


async def finish(
    scenario: str, workload: Workload, store: Store, report: Report, details: Callable[[], str]
) -> Counts:
    """Stop the editors, wait for the database, count, report, and check the counts.

    Raises:
        AssertionError: an acknowledged edit is lost, a mutation was applied twice, an edit was
            refused, too few edits were acknowledged, or the editors' views do not reach the database's.
    """
    await workload.stop()
    db = await workload.settle(store)
    counts = workload.count(scenario, db, details)
    report(counts)
    assert counts.lost == 0, counts.line()
    assert counts.applied_twice == 0, counts.line()
    refused = [f"{e.name}.{mid}: {code}" for e in workload.editors for mid, code in e.refused.items()]
    assert not refused, f"{counts.line()}: {len(refused)} mutations refused, e.g. {refused[:5]}"
    assert counts.acknowledged >= MIN_ACKNOWLEDGED, counts.line()
    await workload.views_agree(store)
    return counts


# ---- daemons -----------------------------------------------------------------------------------------


class Daemons:
    """Starts ``syncd run`` processes off the event loop and stops them at the end of the test."""

    def __init__(self) -> None:
        self.started: list[DaemonProcess] = []

    async def start(self, state_dir: Path, env: Mapping[str, str]) -> DaemonProcess:
        """Start a daemon with a short debounce (and ``env``) on ``state_dir``."""
        daemon = DaemonProcess(state_dir, env={**FAST_SAVES, **env})
        self.started.append(daemon)
        await asyncio.to_thread(daemon.start)
        return daemon

    async def stop(self) -> None:
        """Stop every daemon still running (off the loop, which may serve the stand-in they write to)."""
        for daemon in self.started:
            await asyncio.to_thread(daemon.stop)


@pytest.fixture
async def daemons() -> AsyncIterator[Daemons]:
    """Daemons for one test, stopped after it (before the stand-in, which tests request first)."""
    started = Daemons()
    yield started
    await started.stop()


async def kill_and_restart(daemon: DaemonProcess, down: float, workload: Workload, store: Store) -> int:
    """``kill -9`` the daemon, leave it down for ``down`` seconds, start it again on its port.

    Returns:
        How many acknowledged edits were not saved yet when it was killed (the journal's to keep).
    """
    await asyncio.to_thread(daemon.kill)
    unsaved = await workload.unsaved(store)
    await asyncio.sleep(down)
    await daemon.restart()
    return unsaved


# ---- the Supabase stand-in and its faults ------------------------------------------------------------


@dataclass
class RestChaos:
    """Faults of the stand-in's ``syncd_apply`` endpoint beyond its own switches.

    Attributes:
        lose_answers: how many of the next successful ``syncd_apply`` answers to replace with a 503: the
            transaction committed, but the daemon hears that it failed and sends the batch again.
        answers_lost: how many answers were replaced so far.
        statuses: HTTP status -> how many ``syncd_apply`` calls were answered with it (before replacing).
    """

    lose_answers: int = 0
    answers_lost: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Wrap the stand-in's RPC handler (before the stand-in starts, which binds it to its route)."""
        original = RestApi.handle_rpc

        async def handle_rpc(api: RestApi, request: web.Request) -> web.StreamResponse:
            response = await original(api, request)
            if request.match_info.get("function") != "syncd_apply":
                return response
            self.statuses[response.status] += 1
            if response.status == 200 and self.lose_answers > 0:
                self.lose_answers -= 1
                self.answers_lost += 1
                return unavailable().response()
            return response

        monkeypatch.setattr(RestApi, "handle_rpc", handle_rpc)


@dataclass
class ChaosSupabase:
    """The stand-in, its fault switches, and the database with the write log."""

    supabase: LocalSupabase
    rest: RestChaos
    store: PostgresStore

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a Supabase-mode daemon on the stand-in (short write retries)."""
        return {
            "SUPABASE_URL": self.supabase.url,
            "SUPABASE_SERVICE_KEY": self.supabase.service_key,
            "SUPABASE_JWT_SECRET": self.supabase.jwt_secret,
            "SYNCD_AUTH__ALLOW_ANONYMOUS": "true",
            "SYNCD_WRITER__RETRY_INITIAL_DELAY": "0.1",
            "SYNCD_WRITER__RETRY_MAX_DELAY": "1",
            **(extra or {}),
        }


@pytest.fixture
async def standin(supabase_db: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ChaosSupabase]:
    """The stand-in over a fresh database that has the write log and the refusal switch."""
    await PostgresStore.install(supabase_db)
    rest = RestChaos()
    rest.install(monkeypatch)
    async with LocalSupabase(supabase_db) as supabase:
        # Realtime retries a failed subscription after 5-10 s; a second keeps the scenarios short.
        supabase.realtime.config.subscribe_retry_delay = (0.5, 1.0)
        yield ChaosSupabase(supabase, rest, PostgresStore(supabase.pool))


# ---- a small disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of :data:`DISK_BYTES` mounted in the test's folder (skipped when mounting is not allowed)."""
    with small_tmpfs(tmp_path / "disk", DISK_BYTES) as mount_point:
        yield mount_point
