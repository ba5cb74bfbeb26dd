"""ClusterRouter: the gateway's `EditorHandler` in cluster mode, in front of the project host.

An editor's project is served here when this instance owns it, or can take it now; otherwise its
frames are relayed to the owner (`syncd.cluster.relay`). A project whose owner does not answer (killed,
paused, cut off) is taken over once the lease rules allow; the editor's ``hello`` waits meanwhile.

While it relays a project's editors, this instance watches the project's lease: when the owner
changes, or stops renewing for a whole TTL (this instance then takes the project), the relayed
editors are closed with 1012. They reconnect and resume, from a snapshot when the epoch changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.errors

from syncd.adapters.gateway import fan_out
from syncd.cluster.connection import honour_cancellation
from syncd.cluster.relay import CONN, EDGE, KIND, header
from syncd.errors import AccessRefused, ClusterError
from syncd.inbound import HelloFrame, MutationFrame
from syncd.wire import CLOSE_RESTART

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from syncd.adapters.gateway import EditorConnection
    from syncd.cluster.node import ClusterNode

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 2.0
"""Seconds the owner may take to answer a relayed hello before it counts as not answering."""
OPEN_WITHIN_TTLS = 3
"""A hello waits at most this many lease TTLs for a project to get an owner that answers."""
MOVED = "the project's owner changed; reconnect"


@dataclass(eq=False)
class _Relayed:
    conn: EditorConnection
    project_id: str
    owner: str


class ClusterRouter:
    """Local or relayed, per editor (the gateway's `syncd.adapters.gateway.EditorHandler` port).

    Args:
        node: this instance's cluster node (leases, relay subjects, the host).
    """

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.relays = 0
        """Editors relayed to another instance since the start."""
        self._relayed: dict[str, _Relayed] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._sub: Subscription | None = None

    async def start(self, nc: Client) -> None:
        """Subscribe to this instance's edge subject."""
        self._sub = await nc.subscribe(self.node.edge_subject(self.node.instance_id), cb=self._on_frame)

    async def stop(self) -> None:
        """Close relayed editors with 1012 and stop watching."""
        for relayed in list(self._relayed.values()):
            relayed.conn.close(CLOSE_RESTART, "daemon restarting")
        for task in self._watchers.values():
            task.cancel()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()

    # -- EditorHandler ------------------------------------------------------------------------------

    async def open(self, conn: EditorConnection, hello: HelloFrame, user_id: str | None) -> None:
        """Serve the editor here when this instance owns the project (or takes it now); else relay it.

        Raises:
            AccessRefused: refused by the owner, or no owner answered within a few lease TTLs.
        """
        project_id = hello.project_id.lower()
        loop = asyncio.get_running_loop()
        node = self.node
        assert node.leases is not None
        give_up_at = loop.time() + OPEN_WITHIN_TTLS * node.settings.lease_ttl
        while True:
            try:
                if await node.own(project_id):
                    await node.host.open(conn, hello, user_id)
                    return
                # Registered before asking: the owner's welcome may come before its answer.
                self._relayed[conn.conn_id] = _Relayed(conn, project_id, "")
                owner = await self._ask_owner(conn, project_id, hello, user_id)
            except ClusterError as exc:
                owner = None
                log.info("project %s: NATS did not answer (%s)", project_id, exc)
            finally:
                relayed = self._relayed.pop(conn.conn_id, None)
            if owner is not None and relayed is not None:
                relayed.owner = owner
                self._relayed[conn.conn_id] = relayed
                self.relays += 1
                if project_id not in self._watchers:
                    self._watchers[project_id] = asyncio.create_task(
                        self._watch(project_id), name=f"syncd.relay.watch.{project_id}"
                    )
                return
            if loop.time() >= give_up_at:
                raise AccessRefused("unavailable", "the project's owner does not answer; try again")
            await asyncio.sleep(node.leases.pause(project_id))

    async def _ask_owner(
        self, conn: EditorConnection, project_id: str, hello: HelloFrame, user_id: str | None
    ) -> str | None:
        """Relay the hello; return the owner that took the editor, or None when nobody answered."""
        node = self.node
        assert node.nc is not None
        payload = json.dumps(
            {"hello": hello.model_dump(mode="json", exclude={"token"}), "user_id": user_id}
        ).encode()
        headers = {KIND: "hello", EDGE: node.instance_id, CONN: conn.conn_id}
        try:
            msg = await node.nc.request(
                node.owner_subject(project_id), payload, timeout=HELLO_TIMEOUT, headers=headers
            )
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return None
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot reach the owner of project {project_id}: {exc!r}") from exc
        answer = json.loads(msg.data)
        if "code" in answer:
            raise AccessRefused(answer["code"], answer.get("message", ""))
        owner = answer.get("owner")
        return owner if isinstance(owner, str) else None

    def receive(self, conn: EditorConnection, mutation: MutationFrame) -> None:
        """Serve the mutation here, or relay it to the owner."""
        relayed = self._relayed.get(conn.conn_id)
        if relayed is None:
            self.node.host.receive(conn, mutation)
            return
        self._to_owner(relayed, "mutation", mutation.model_dump_json().encode())

    def closed(self, conn: EditorConnection) -> None:
        """Forget the editor here, or tell its owner."""
        relayed = self._relayed.pop(conn.conn_id, None)
        if relayed is None:
            self.node.host.closed(conn)
            return
        self._to_owner(relayed, "closed", b"")
        if not any(r.project_id == relayed.project_id for r in self._relayed.values()):
            watcher = self._watchers.pop(relayed.project_id, None)
            if watcher is not None:
                watcher.cancel()
                self._forget(relayed.project_id)

    def overflowed(self, conn: EditorConnection) -> None:
        """The editor's backlog was dropped: the owner (here or there) sends a snapshot."""
        relayed = self._relayed.get(conn.conn_id)
        if relayed is None:
            self.node.host.overflowed(conn)
        else:
            self._to_owner(relayed, "overflow", b"")

    def _to_owner(self, relayed: _Relayed, kind: str, data: bytes) -> None:
        node = self.node
        assert node.outlet is not None
        headers = {KIND: kind, EDGE: node.instance_id, CONN: relayed.conn.conn_id}
        node.outlet.publish(node.owner_subject(relayed.project_id), data, headers)

    # -- the owner's frames ---------------------------------------------------------------------------

    async def _on_frame(self, msg: Msg) -> None:
        if header(msg.headers, KIND) == "ping":
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(b"")
            return
        kind = header(msg.headers, KIND)
        if kind == "send":
            conns = (self._relayed.get(conn_id) for conn_id in header(msg.headers, CONN).split(","))
            fan_out([r.conn for r in conns if r is not None], msg.data, self.overflowed)
            return
        relayed = self._relayed.get(header(msg.headers, CONN))
        if relayed is None:
            return
        conn = relayed.conn
        if kind == "reply":
            conn.reply(msg.data)
        elif kind == "now":
            conn.send_now(msg.data)
        elif kind == "close":
            what = json.loads(msg.data)
            conn.close(int(what["code"]), str(what["reason"]))

    # -- watching the owner ---------------------------------------------------------------------------

    def watching(self, project_id: str) -> bool:
        """Whether editors of the project are relayed from here (its lease is being watched)."""
        return project_id in self._watchers

    def _forget(self, project_id: str) -> None:
        assert self.node.leases is not None
        self.node.leases.forget(project_id)

    async def _watch(self, project_id: str) -> None:
        """Close the project's relayed editors when its owner changes or stops renewing."""
        node = self.node
        assert node.leases is not None
        while True:
            await asyncio.sleep(node.leases.pause(project_id))
            try:
                took = await node.own(project_id)
                # own() read the key to decide: no second read for who holds it.
                record = None if took else node.leases.last_seen(project_id)
            except (ClusterError, AccessRefused) as exc:
                log.info("project %s: cannot check its owner now (%s)", project_id, exc)
                continue
            # A watcher stopped (its last editor left, the daemon stopping) must not go on closing
            # editors or taking the project.
            honour_cancellation()
            owner = None if record is None else record.owner
            for relayed in [r for r in self._relayed.values() if r.project_id == project_id]:
                if relayed.owner and relayed.owner != owner:  # "" while its hello is on the way
                    # It stays relayed until the gateway reports it closed: frames still on the
                    # way from the old owner are dropped by the closing connection.
                    relayed.conn.close(CLOSE_RESTART, MOVED)
            if not any(r.project_id == project_id for r in self._relayed.values()):
                self._watchers.pop(project_id, None)
                self._forget(project_id)
                return
