"""Helpers of the Realtime tests: quick timings, a recorder for realtime-py callbacks, raw Phoenix sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import websockets
from realtime import AsyncRealtimeChannel, AsyncRealtimeClient, RealtimeSubscribeStates
from realtime.message import SuccessSystemPayload
from realtime.types import PostgresChangesPayload, RealtimePostgresChangesListenEvent

from localsupabase.app import LocalSupabase

WAIT = 5.0
"""Seconds a test waits for something that should happen well within it."""

SUBSCRIBED_TO_POSTGRES = "Subscribed to PostgreSQL"


def make_quick(stack: LocalSupabase) -> LocalSupabase:
    """Shorten the Realtime server's waits so that each test takes a fraction of a second."""
    config = stack.realtime.config
    config.poller.idle_interval = 0.02
    config.poller.poll_interval = 0.02
    config.poller.poll_jitter = (0.0, 0.01)
    config.resubscribe_delay = (0.0, 0.0)
    config.subscribe_retry_delay = (0.1, 0.1)
    return stack


async def wait_until(predicate: Callable[[], bool], within: float = WAIT) -> None:
    """Poll ``predicate`` every few milliseconds until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@dataclass
class Recorder:
    """Collects what realtime-py reports for one channel, in arrival order."""

    states: list[RealtimeSubscribeStates] = field(default_factory=list)
    errors: list[Exception | None] = field(default_factory=list)
    system: list[SuccessSystemPayload] = field(default_factory=list)
    changes: list[PostgresChangesPayload] = field(default_factory=list)

    def on_state(self, state: RealtimeSubscribeStates, error: Exception | None) -> None:
        """Subscribe callback: record the state and its error."""
        self.states.append(state)
        self.errors.append(error)

    def on_system(self, payload: SuccessSystemPayload) -> None:
        """System callback (realtime-py only passes status ok here)."""
        self.system.append(payload)

    def on_change(self, payload: PostgresChangesPayload) -> None:
        """postgres_changes callback."""
        self.changes.append(payload)

    def subscribed_count(self) -> int:
        """How many "Subscribed to PostgreSQL" messages arrived."""
        return sum(1 for payload in self.system if payload.message == SUBSCRIBED_TO_POSTGRES)

    async def wait_ready(self, count: int = 1) -> None:
        """Wait for the ``count``-th "Subscribed to PostgreSQL": from then on changes are delivered."""
        await wait_until(lambda: self.subscribed_count() >= count)

    async def next_change(self, index: int) -> PostgresChangesPayload:
        """Wait for the change number ``index`` (0-based) and return it."""
        await wait_until(lambda: len(self.changes) > index)
        return self.changes[index]


def record_of(change: PostgresChangesPayload, key: str = "record") -> dict[str, Any]:
    """Return ``data.record`` (or ``data.old_record``) of a change, failing the test if it is missing."""
    data: dict[str, Any] = dict(change["data"])
    record: dict[str, Any] | None = data.get(key)
    assert record is not None, f"the change has no {key}"
    return record


@asynccontextmanager
async def realtime_client(stack: LocalSupabase, key: str | None = None) -> AsyncIterator[AsyncRealtimeClient]:
    """A realtime-py client on the stand-in (service key by default), closed afterwards."""
    client = AsyncRealtimeClient(f"{stack.url}/realtime/v1", token=key or stack.service_key, max_retries=3)
    try:
        yield client
    finally:
        await client.close()


async def subscribe_scenes(
    client: AsyncRealtimeClient,
    recorder: Recorder,
    *,
    name: str = "db-sync",
    table: str = "scenes",
    filter: str | None = None,
    ready: bool = True,
) -> AsyncRealtimeChannel:
    """Join channel ``name`` with one ``*`` binding on ``public.<table>``; wait for readiness if asked."""
    channel = client.channel(name)
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.All,
        recorder.on_change,
        table=table,
        schema="public",
        filter=filter,
    )
    channel.on_system(recorder.on_system)
    await channel.subscribe(recorder.on_state)
    if ready:
        await recorder.wait_ready()
    return channel


class RawSocket:
    """A bare websocket speaking Phoenix frames, for what realtime-py cannot show (refs, V2, ordering).

    Args:
        connection: The open websocket.
        vsn: ``1.0.0`` for JSON objects, ``2.0.0`` for arrays.
    """

    def __init__(self, connection: websockets.ClientConnection, vsn: str) -> None:
        self.connection = connection
        self.vsn = vsn
        self._ref = 0

    def next_ref(self) -> str:
        """A fresh client ref."""
        self._ref += 1
        return str(self._ref)

    async def send(
        self, topic: str, event: str, payload: dict[str, Any], ref: str | None, join_ref: str | None = None
    ) -> None:
        """Send one frame in this socket's format."""
        if self.vsn.startswith("2."):
            text = json.dumps([join_ref, ref, topic, event, payload])
        else:
            text = json.dumps(
                {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
            )
        await self.connection.send(text)

    async def receive(self, within: float = WAIT) -> Any:
        """Return the next frame, waiting at most ``within`` seconds; decoded from JSON, otherwise as sent."""
        text = await asyncio.wait_for(self.connection.recv(), within)
        return json.loads(text)

    async def join(
        self, topic: str, bindings: list[dict[str, Any]], access_token: str | None = None
    ) -> tuple[str, Any]:
        """Send a realtime-py-like join and return its ref and the reply frame."""
        ref = self.next_ref()
        payload: dict[str, Any] = {
            "config": {
                "broadcast": {"ack": False, "self": False},
                "presence": {"key": "", "enabled": False},
                "private": False,
                "postgres_changes": bindings,
            }
        }
        if access_token is not None:
            payload["access_token"] = access_token
        await self.send(topic, "phx_join", payload, ref, ref)
        return ref, await self.receive()


@asynccontextmanager
async def raw_socket(
    stack: LocalSupabase,
    *,
    key: str | None = None,
    vsn: str = "1.0.0",
    path: str = "/realtime/v1/websocket",
) -> AsyncIterator[RawSocket]:
    """Open a bare websocket to the stand-in with ``apikey`` and ``vsn`` in the query."""
    url = f"ws://127.0.0.1:{stack.port}{path}?apikey={key or stack.service_key}&vsn={vsn}"
    async with websockets.connect(url, open_timeout=WAIT) as connection:
        yield RawSocket(connection, vsn)
