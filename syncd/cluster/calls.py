"""HTTP calls on projects another instance owns: run by the owner, asked for over NATS.

The HTTP API hands a call on a project's live state (`syncd.api.relay`) to `CallRelay.forward`. The
instance serves it itself when it owns the project or can take it now (nobody owns it: the lease is
free, or its owner stopped renewing for a whole TTL); otherwise it sends the call as a NATS request to
``<prefix>.owner.<project_id>``, the subject only the owner listens on, with ``Syncd-Kind: call``. The
owner runs it and replies with the JSON body and a ``Syncd-Status`` header.

An owner that no longer acts for the project (its term ran out, it is letting the project go) replies
without a status: the call was not run, and the edge asks again (or takes the project) after the
lease's poll interval, as for a relayed ``hello``. A request that times out is not asked again: the
owner may have run it, and a write such as "add a clip" is not idempotent; the caller gets
``unavailable`` and a message that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import nats.errors

from syncd.cluster.relay import EDGE, KIND, header
from syncd.errors import ClusterError, EditRejected

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from syncd.cluster.node import ClusterNode

log = logging.getLogger(__name__)

STATUS = "Syncd-Status"
"""The header of an owner's reply that carries the call's HTTP status; absent: the call was not run."""
CALL_MARGIN = 5.0
"""Seconds a relayed call may take beyond the owner's own wait for a load or a save."""
WITHIN_TTLS = 3
"""A call waits at most this many lease TTLs for the project to get an owner that answers."""

Runner = Callable[[bytes], Awaitable[tuple[int, bytes] | None]]
"""Runs a relayed call here (None: not run): `syncd.api.http.HttpApi.run_relayed`."""


class CallRelay:
    """Both ends of relayed HTTP calls (the API's `syncd.api.relay.Forwarder` port).

    Args:
        node: this instance's cluster node (leases, subjects, the NATS connection).
        wait: seconds the owner's service session waits for a load or a save
            (``writer.request_timeout``); a relayed call is given that plus `CALL_MARGIN`.
    """

    def __init__(self, node: ClusterNode, wait: float) -> None:
        self.node = node
        self.timeout = wait + CALL_MARGIN
        self.runner: Runner | None = None
        """Set once the HTTP API exists; calls that arrive before are answered as not run."""
        self.forwarded = 0
        """Calls this instance sent to an owner since the start."""

    # -- the edge --------------------------------------------------------------------------------------

    async def forward(self, project_id: str, call: bytes) -> tuple[int, bytes] | None:
        """Serve here (None) when this instance owns the project or takes it now; else ask the owner.

        Raises:
            EditRejected: ``unavailable`` when no owner answered in time, or the owner did not answer
                a call it may have run; ``too_large`` when the call is over NATS's message limit.
        """
        node = self.node
        assert node.leases is not None
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + WITHIN_TTLS * node.settings.lease_ttl
        while True:
            try:
                if await node.own(project_id):
                    return None
                answer = await self._ask(project_id, call)
            except ClusterError as exc:
                answer = None
                log.info("project %s: NATS did not answer (%s)", project_id, exc)
            if answer is not None:
                self.forwarded += 1
                if not node.router.watching(project_id):
                    node.leases.forget(project_id)  # nothing here waits to take it over
                return answer
            if loop.time() >= give_up_at:
                raise EditRejected("unavailable", "the project's owner does not answer; try again")
            await asyncio.sleep(node.leases.pause(project_id))

    async def _ask(self, project_id: str, call: bytes) -> tuple[int, bytes] | None:
        """The owner's status and body; None when no owner ran the call."""
        node = self.node
        assert node.nc is not None
        if len(call) > node.nc.max_payload:
            raise EditRejected(
                "too_large",
                f"the call is {len(call)} bytes; instances pass at most {node.nc.max_payload}"
                " (nats-server's max_payload)",
            )
        headers = {KIND: "call", EDGE: node.instance_id}
        try:
            msg = await node.nc.request(
                node.owner_subject(project_id), call, timeout=self.timeout, headers=headers
            )
        except nats.errors.NoRespondersError:
            return None
        except nats.errors.TimeoutError:
            raise EditRejected(
                "unavailable",
                f"the project's owner did not answer within {self.timeout:.0f} s; a write may or may not"
                " have been applied: read the project before trying again",
            ) from None
        except nats.errors.Error as exc:
            raise ClusterError(f"cannot reach the owner of project {project_id}: {exc!r}") from exc
        status = header(msg.headers, STATUS)
        return (int(status), msg.data) if status.isdigit() else None

    # -- the owner -------------------------------------------------------------------------------------

    async def serve(self, msg: Msg, project_id: str) -> None:
        """Run a call another instance relayed, if this instance still acts for the project."""
        node = self.node
        assert node.nc is not None
        headers: dict[str, str] = {}
        body = b""
        answer = None
        if self.runner is not None and node.acting(project_id):
            answer = await self.runner(msg.data)
        if answer is not None:
            status, body = answer
            if len(body) > node.nc.max_payload:
                log.warning("project %s: a relayed call's answer is over NATS's max_payload", project_id)
                status, body = 500, _too_large(len(body), node.nc.max_payload)
            headers[STATUS] = str(status)
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await node.nc.publish(msg.reply, body, headers=headers)


def _too_large(size: int, limit: int) -> bytes:
    message = f"the answer is {size} bytes; instances pass at most {limit} (raise nats-server's max_payload)"
    return json.dumps({"error": "internal", "message": message}).encode()
