"""ClusterNode: one instance's part of cluster mode, between the host and NATS.

Entered by the supervisor in place of the local outbox when ``[cluster] enabled``. It holds the NATS
connection, the ownership leases (`syncd.cluster.lease.Leases`), the replicated journal and the relay,
and answers the host's ownership questions (`syncd.cluster.port.Ownership`) from the leases it holds.

Taking a project, in this order (docs/scaling.md): the lease (its revision is the fencing token); an
empty batch carrying the token, so that the store refuses every later write of the previous owner;
the project's journal entries, replayed into a new epoch of the project; its rows loaded, which seeds
the dedupe with the highest mid per client the store recorded; then the lease is renewed until the
project is released (idle and saved), lost (another instance wrote the key, or the store refused a
write by its fence) or the instance stops (leases are released after the drain).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self, cast

import nats.errors

from syncd.cluster.calls import CallRelay
from syncd.cluster.connection import connect_nats
from syncd.cluster.journal import ReplicatedJournal
from syncd.cluster.lease import Leases
from syncd.cluster.ownership import Term
from syncd.cluster.relay import CONN, EDGE, KIND, Outlet, RemoteConnection, header
from syncd.cluster.router import ClusterRouter
from syncd.config import SyncdSettings
from syncd.core.batch import WriteBatch
from syncd.core.ids import MutationId, ProjectId
from syncd.core.journal import JournalEntry
from syncd.errors import AccessRefused, ClusterError, FrameError, JournalError, StaleOwner, SyncdError
from syncd.inbound import HelloFrame, MutationFrame, parse_frame
from syncd.wire import CLOSE_RESTART

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from syncd.adapters.gateway import EditorConnection
    from syncd.backend import Backend
    from syncd.host import ProjectHost

log = logging.getLogger(__name__)

JOURNAL_APPEND_TIMEOUT = 30.0
"""Seconds an append may wait for the journal stream: longer than a stream leader election (~8 s)."""
LOST = "another instance owns the project now; reconnect"


class _JournalPort:
    """The replicated journal with the host's `syncd.cluster.port.Journal` interface."""

    def __init__(self, journal: ReplicatedJournal) -> None:
        self.journal = journal

    def append_nowait(self, entry: JournalEntry) -> asyncio.Future[None]:
        return self.journal.append_nowait(entry)

    async def remove(self, project_id: ProjectId, mutation_ids: Sequence[MutationId]) -> None:
        try:
            await self.journal.remove(mutation_ids)
        except JournalError as exc:
            # The edits are saved; entries left behind are replayed and skipped (syncd_mutations).
            log.warning("project %s: saved edits stay in the journal for now: %s", project_id, exc)


class ClusterNode:
    """This instance in the cluster: leases held, the journal, and the owner's side of the relay.

    Args:
        settings: every setting; ``settings.cluster`` is used here.
        host: the project host; its journal and ownership are set when the node is entered.
        backend: the database (for the empty fencing batch).
    """

    def __init__(self, settings: SyncdSettings, host: ProjectHost, backend: Backend) -> None:
        c = settings.cluster
        self.settings = c
        self.instance_id = c.resolved_instance_id()
        self.host = host
        self.backend = backend
        self.router = ClusterRouter(self)
        self.calls = CallRelay(self, settings.writer.request_timeout)
        self.nc: Client | None = None
        self.leases: Leases | None = None
        self.journal: ReplicatedJournal | None = None
        self.outlet: Outlet | None = None
        self._terms: dict[str, Term] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._subs: dict[str, Subscription] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._remotes: dict[tuple[str, str], RemoteConnection] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- subjects --------------------------------------------------------------------------------------

    def owner_subject(self, project_id: str) -> str:
        """Where edge instances send a project's editor frames."""
        return f"{self.settings.subject_prefix}.owner.{project_id}"

    def edge_subject(self, instance_id: str) -> str:
        """Where the owners send an instance's relayed editors their frames."""
        return f"{self.settings.subject_prefix}.edge.{instance_id}"

    # -- start and stop --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        c = self.settings
        self.nc = await connect_nats(c.nats_urls, self.instance_id)
        try:
            js = self.nc.jetstream()
            self.leases = await Leases.open(
                js,
                c.lease_bucket,
                self.instance_id,
                ttl=c.lease_ttl,
                renew_interval=c.renew_interval,
                replicas=c.replicas,
            )
            self.journal = ReplicatedJournal(
                js,
                stream=c.journal_stream,
                subject_prefix=c.subject_prefix,
                writer_id=self.instance_id,
                replicas=c.replicas,
                append_timeout=JOURNAL_APPEND_TIMEOUT,
            )
            await self.journal.__aenter__()
        except BaseException:
            await self.nc.close()
            raise
        self.outlet = Outlet(self.nc)
        self.outlet.start()
        self._spawn(self._check_edges(), "syncd.relay.edges")
        await self.router.start(self.nc)
        self.host.journal = _JournalPort(self.journal)
        self.host.ownership = self
        log.info("cluster mode: instance %s, NATS %s", self.instance_id, ", ".join(c.nats_urls))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close relayed editors, give every lease up, then close the journal and the connection."""
        for remote in list(self._remotes.values()):
            remote.close(CLOSE_RESTART, "daemon restarting")
        await self.router.stop()
        for project_id in list(self._terms):
            await self._release(project_id)
        for task in list(self._tasks):
            task.cancel()
        assert self.outlet is not None
        assert self.journal is not None
        assert self.nc is not None
        await self.outlet.stop()
        await self.journal.__aexit__(None, None, None)
        await self.nc.close()

    def readiness(self) -> tuple[bool, str] | None:
        """Why this instance is not ready (NATS lost), or None."""
        if self.nc is None or not self.nc.is_connected:
            return False, "NATS not connected"
        return None

    def depth(self) -> int:
        """Journal entries this instance wrote or replayed and has not removed."""
        return 0 if self.journal is None else self.journal.depth()

    # -- the host's Ownership port ---------------------------------------------------------------------

    def acting(self, project_id: str) -> bool:
        """Whether this instance holds the project's lease and its term is still running."""
        term = self._terms.get(project_id)
        assert self.leases is not None
        return term is not None and term.holds(self.leases.clock())

    def fence(self, project_id: str) -> int | None:
        """The term's fencing token; 0 (refused by any store that saw an owner) once it is gone."""
        term = self._terms.get(project_id)
        return 0 if term is None else term.token

    def stale(self, project_id: str) -> None:
        """The store refused a write by its fence: the project is another instance's."""
        self.lose(project_id)

    def released(self, project_id: str) -> None:
        """The host closed the project: give its lease up unless it is being taken again meanwhile."""
        lock = self._locks.get(project_id)
        if lock is not None and lock.locked():
            return
        term = self._let_go(project_id)
        if term is not None:
            self._spawn(self._give_back(project_id, term), f"syncd.release.{project_id}")

    # -- taking, keeping, losing -----------------------------------------------------------------------

    async def own(self, project_id: str) -> bool:
        """Whether this instance owns the project, taking it now if the lease rules allow.

        Raises:
            ClusterError: NATS cannot be asked.
            AccessRefused: the lease was taken but the database cannot be reached to raise the fence.
        """
        if project_id in self._terms:
            return True
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            if project_id in self._terms:
                return True
            assert self.leases is not None
            step = await self.leases.try_acquire(project_id)
            if not isinstance(step, Term):
                return False
            await self._adopt(project_id, step)
            return True

    async def _adopt(self, project_id: str, term: Term) -> None:
        """Raise the fence, replay the journal into a new epoch, then keep the lease."""
        assert self.leases is not None
        assert self.journal is not None
        pid = ProjectId(project_id)
        try:
            await self.backend.apply(WriteBatch(pid, 0, (), (), fence=term.token))
            entries = await self.journal.load(pid)
        except StaleOwner:
            # An instance that took the project after this acquisition raised the fence already.
            term.give_up()
            log.warning("project %s: taken over again before it was adopted", project_id)
            raise AccessRefused("unavailable", "the project is changing owner; try again") from None
        except (SyncdError, OSError) as exc:
            await self.leases.release(project_id, term)
            raise AccessRefused("unavailable", f"the project cannot be taken now: {exc}") from exc
        self._terms[project_id] = term
        self._keepers[project_id] = self.leases.keep(project_id, term, lambda: self.lose(project_id))
        assert self.nc is not None
        self._subs[project_id] = await self.nc.subscribe(self.owner_subject(project_id), cb=self._on_frame)
        log.info(
            "owning project %s (fencing token %d): %d journal entries to replay",
            project_id,
            term.token,
            len(entries),
        )
        self.host.adopt(project_id, entries)

    def lose(self, project_id: str) -> None:
        """The project is another instance's now: close its editors with 1012 and drop its state."""
        term = self._terms.pop(project_id, None)
        if term is None:
            return
        term.give_up()
        self._stop_owning(project_id)
        self.host.abandon(project_id, LOST)
        self._forget_remotes(project_id)
        log.warning("project %s lost (fencing token %d): editors closed with 1012", project_id, term.token)

    async def _release(self, project_id: str) -> None:
        term = self._let_go(project_id)
        if term is not None:
            await self._give_back(project_id, term)

    def _let_go(self, project_id: str) -> Term | None:
        """Stop acting for a project at once (no await: no editor can slip in before the lease goes)."""
        term = self._terms.pop(project_id, None)
        if term is not None:
            self._stop_owning(project_id)
            self._forget_remotes(project_id)
        return term

    async def _give_back(self, project_id: str, term: Term) -> None:
        assert self.leases is not None
        await self.leases.release(project_id, term)
        log.info("released project %s", project_id)

    def _stop_owning(self, project_id: str) -> None:
        keeper = self._keepers.pop(project_id, None)
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()
        sub = self._subs.pop(project_id, None)
        if sub is not None:
            self._spawn(_unsubscribe(sub), f"syncd.unsubscribe.{project_id}")

    def _forget_remotes(self, project_id: str) -> None:
        for key, remote in list(self._remotes.items()):
            if remote.project_id == project_id:
                remote.close(CLOSE_RESTART, LOST)
                del self._remotes[key]

    # -- the owner's side of the relay -----------------------------------------------------------------

    async def _on_frame(self, msg: Msg) -> None:
        kind, edge, edge_conn = (
            header(msg.headers, KIND),
            header(msg.headers, EDGE),
            header(msg.headers, CONN),
        )
        project_id = msg.subject.rsplit(".", 1)[-1]
        if kind == "hello":
            self._spawn(self._hello(msg, project_id, edge, edge_conn), f"syncd.relay.hello.{project_id}")
            return
        if kind == "call":
            self._spawn(self.calls.serve(msg, project_id), f"syncd.relay.call.{project_id}")
            return
        remote = self._remotes.get((edge, edge_conn))
        if remote is None:
            if kind == "mutation":
                # An editor this instance does not serve (it was another owner's, or let go): the
                # edge closes it, and it reconnects to whoever owns the project now.
                assert self.outlet is not None
                gone = RemoteConnection("", edge, edge_conn, self.edge_subject(edge), self.outlet)
                gone.close(CLOSE_RESTART, LOST)
            return
        remote_conn = cast("EditorConnection", remote)
        if kind == "mutation":
            try:
                frame = parse_frame(msg.data, max_bytes=len(msg.data) + 1)
            except FrameError as exc:
                log.warning("relay: a mutation from %s could not be read: %s", edge, exc.message)
                return
            if isinstance(frame, MutationFrame):
                self.host.receive(remote_conn, frame)
        elif kind == "overflow":
            self.host.overflowed(remote_conn)
        elif kind == "closed":
            del self._remotes[(edge, edge_conn)]
            self.host.closed(remote_conn)

    async def _hello(self, msg: Msg, project_id: str, edge: str, edge_conn: str) -> None:
        """Take a relayed editor: answer ``ok`` or the refusal; not the owner now: no answer."""
        answer: dict[str, Any]
        if not self.acting(project_id):
            return  # no answer: the owner, if another instance, answers; else the edge waits and takes it
        try:
            data = json.loads(msg.data)
            hello = HelloFrame.model_validate(data["hello"])
            user_id = data.get("user_id")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("relay: a hello from %s could not be read: %s", edge, exc)
            answer = {"code": "bad_request", "message": "the relayed hello could not be read"}
        else:
            answer = await self._attach(project_id, edge, edge_conn, hello, user_id)
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(json.dumps(answer).encode())

    async def _attach(
        self, project_id: str, edge: str, edge_conn: str, hello: HelloFrame, user_id: str | None
    ) -> dict[str, Any]:
        assert self.outlet is not None
        remote = RemoteConnection(
            f"r{next(self._ids)}", edge, edge_conn, self.edge_subject(edge), self.outlet
        )
        remote.project_id, remote.client_id, remote.user_id = project_id, hello.client_id.lower(), user_id
        old = self._remotes.pop((edge, edge_conn), None)
        if old is not None:
            self.host.closed(cast("EditorConnection", old))
        self._remotes[(edge, edge_conn)] = remote
        try:
            await self.host.open(cast("EditorConnection", remote), hello, user_id)
        except AccessRefused as exc:
            self._remotes.pop((edge, edge_conn), None)
            return {"code": exc.code, "message": exc.message}
        return {"ok": True, "owner": self.instance_id}

    async def _check_edges(self) -> None:
        """Forget the relayed editors of edge instances that are gone (their subject has no subscriber).

        A killed edge says no goodbye for its editors; without this they would stay in their
        projects' presence, and keep the projects open, for good.
        """
        assert self.nc is not None
        while True:
            await asyncio.sleep(self.settings.lease_ttl)
            for edge in {remote.edge for remote in self._remotes.values()}:
                try:
                    await self.nc.request(self.edge_subject(edge), b"", timeout=1.0, headers={KIND: "ping"})
                except nats.errors.NoRespondersError:
                    log.warning("relay: instance %s is gone; dropping its relayed editors", edge)
                    for key, remote in list(self._remotes.items()):
                        if remote.edge == edge:
                            del self._remotes[key]
                            self.host.closed(cast("EditorConnection", remote))
                except nats.errors.Error:
                    continue  # busy or paused: asked again next time

    # -- tasks -----------------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())


async def _unsubscribe(sub: Subscription) -> None:
    with contextlib.suppress(nats.errors.Error):
        await sub.unsubscribe()


__all__ = ["ClusterError", "ClusterNode"]
