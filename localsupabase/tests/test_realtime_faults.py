"""Failures of the stand-in's Realtime server, real and injected, as realtime-py 2.34.1 experiences them."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from realtime import AsyncRealtimeClient
from realtime_support import (
    WAIT,
    Recorder,
    make_quick,
    raw_socket,
    realtime_client,
    record_of,
    subscribe_scenes,
    wait_until,
)

from localsupabase.app import LocalSupabase

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(local_supabase: LocalSupabase) -> LocalSupabase:
    """The stand-in with its Realtime waits shortened."""
    return make_quick(local_supabase)


async def _insert_project(stack: LocalSupabase, title: str) -> None:
    await stack.pool.execute("insert into public.projects (title) values ($1)", title)


def _titles(recorder: Recorder) -> list[str]:
    return [record_of(change)["title"] for change in recorder.changes]


async def test_bad_filter_is_a_channel_error_and_the_rejoin_is_closed(stack: LocalSupabase) -> None:
    """A bad filter gives SUBSCRIBED, CHANNEL_ERROR with Realtime's message, SUBSCRIBED, then CLOSED."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, filter="project_id=like.x", ready=False)
        await wait_until(lambda: len(recorder.states) >= 4)
        assert "realtime:db-sync" not in client.channels

    assert recorder.states == ["SUBSCRIBED", "CHANNEL_ERROR", "SUBSCRIBED", "CLOSED"]
    error = recorder.errors[1]
    assert error is not None
    assert json.loads(str(error)) == {
        "channel": "db-sync",
        "extension": "postgres_changes",
        "message": 'Error parsing `filter` params: ["like", "x"]',
        "status": "error",
    }
    # realtime-py hands only status-ok system messages to on_system.
    assert recorder.system == []


async def test_table_outside_the_publication_is_a_channel_error(stack: LocalSupabase) -> None:
    """Subscribing to a table that is not in supabase_realtime reports Realtime's "Unable to subscribe"."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="voices", ready=False)
        await wait_until(lambda: len(recorder.states) >= 2)

    assert recorder.states[:2] == ["SUBSCRIBED", "CHANNEL_ERROR"]
    assert json.loads(str(recorder.errors[1]))["message"] == (
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the "
        "given connect parameters: [event: *, schema: public, table: voices, filters: [], select: nil]"
    )


# realtime-py 2.34.1 reads ConnectionClosed.code and .reason, deprecated in websockets 13.1; with
# warnings as errors that would kill its listen task instead of starting the reconnect.
@pytest.mark.filterwarnings("ignore:ConnectionClosed.code is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:ConnectionClosed.reason is deprecated:DeprecationWarning")
@pytest.mark.parametrize("code", [1006, 1011, 1012, 1001])
async def test_dropped_socket_reconnects_rejoins_and_delivers_again(stack: LocalSupabase, code: int) -> None:
    """After the server drops the socket, realtime-py reconnects, rejoins and receives changes again."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        await stack.realtime.drop_sockets(code)
        await wait_until(lambda: len(recorder.states) >= 3)
        await recorder.wait_ready(2)
        await _insert_project(stack, "after the drop")
        await recorder.next_change(0)

    assert recorder.states == ["SUBSCRIBED", "CHANNEL_ERROR", "SUBSCRIBED"]
    assert _titles(recorder) == ["after the drop"]


async def test_system_error_leads_to_the_stale_close_sequence(stack: LocalSupabase) -> None:
    """A pushed system error makes realtime-py rejoin; the old join's phx_close then closes its channel."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        await stack.realtime.push_system_error("db-sync")
        await wait_until(lambda: len(recorder.states) >= 4)
        assert client.channels == {}
        # The server side is joined again, but realtime-py no longer routes this topic anywhere.
        await wait_until(lambda: len(stack.realtime.subscriptions()) == 1)
        await _insert_project(stack, "unseen")
        await asyncio.sleep(0.2)

    assert recorder.states == ["SUBSCRIBED", "CHANNEL_ERROR", "SUBSCRIBED", "CLOSED"]
    assert json.loads(str(recorder.errors[1]))["message"] == "Too many database timeouts"
    assert recorder.changes == []


async def test_skipped_changes_are_never_delivered(stack: LocalSupabase) -> None:
    """With skip_changes set to 1 the next polled change is dropped and the one after it delivered."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        stack.faults.skip_changes = 1
        await _insert_project(stack, "skipped")
        await _insert_project(stack, "delivered")
        await recorder.next_change(0)
        await asyncio.sleep(0.1)

    assert _titles(recorder) == ["delivered"]
    assert stack.faults.skip_changes == 0


async def test_poller_restart_loses_changes_not_yet_polled(stack: LocalSupabase) -> None:
    """Restarting the poller drops the temporary slot, so a change committed but not yet polled is lost."""
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects")
        old_slot = await stack.pool.fetchval("select count(*) from pg_replication_slots where temporary")
        await stack.realtime.pause_polling()
        await _insert_project(stack, "in flight")
        await stack.realtime.restart_poller()
        await _insert_project(stack, "after the restart")
        stack.realtime.resume_polling()
        await recorder.next_change(0)
        await asyncio.sleep(0.1)
        slots = await stack.pool.fetchval("select count(*) from pg_replication_slots where temporary")

    assert _titles(recorder) == ["after the restart"]
    assert old_slot == slots == 1


async def test_changes_before_subscribed_to_postgresql_are_missed(stack: LocalSupabase) -> None:
    """With a subscribed delay, SUBSCRIBED comes at once but commits before the system message are missed."""
    stack.faults.subscribed_delay = 0.5
    recorder = Recorder()
    async with realtime_client(stack) as client:
        await subscribe_scenes(client, recorder, table="projects", ready=False)
        assert recorder.states == ["SUBSCRIBED"]
        assert recorder.subscribed_count() == 0
        await _insert_project(stack, "in the window")
        await recorder.wait_ready()
        await _insert_project(stack, "after ready")
        await recorder.next_change(0)
        await asyncio.sleep(0.1)

    assert _titles(recorder) == ["after ready"]


async def test_subscribed_error_is_pushed_and_retried(stack: LocalSupabase) -> None:
    """The subscribed_error fault sends a system error instead of readiness, and the retry succeeds later."""
    stack.faults.subscribed_error = "Too many database timeouts"
    async with raw_socket(stack) as socket:
        _, reply = await socket.join(
            "realtime:retry", [{"event": "*", "schema": "public", "table": "projects"}]
        )
        assert reply["payload"]["status"] == "ok"
        error = await socket.receive()
        stack.faults.subscribed_error = None
        ready = await socket.receive()

    assert error == {
        "topic": "realtime:retry",
        "event": "system",
        "payload": {
            "channel": "retry",
            "extension": "postgres_changes",
            "message": "Too many database timeouts",
            "status": "error",
        },
        "ref": None,
    }
    assert ready["payload"]["message"] == "Subscribed to PostgreSQL"
    assert ready["payload"]["status"] == "ok"


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, "Unauthorized"), (429, "Too many connected users"), (500, "Error connecting to Realtime")],
)
async def test_refused_handshake_answers_plain_http(stack: LocalSupabase, status: int, error: str) -> None:
    """The refuse_handshake fault answers the upgrade with that HTTP status and a JSON error body."""
    stack.faults.refuse_handshake = status
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with raw_socket(stack):
            pass
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body or b"{}") == {"error": error}

    client = AsyncRealtimeClient(f"{stack.url}/realtime/v1", token=stack.service_key, max_retries=1)
    with pytest.raises(websockets.InvalidStatus):
        await asyncio.wait_for(client.connect(), WAIT)
    assert not client.is_connected
