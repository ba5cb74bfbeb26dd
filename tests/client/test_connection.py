"""Tests of syncd.client.EditorClient against a scripted server on a real loopback WebSocket.

The server here is a stand-in for the daemon's editor endpoint: it records what the client sends and
answers with the frames each test scripts, so every rule of the client can be driven exactly. Every
wait is bounded (the peer's receive, the client's request and open timeouts).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from syncd.client import (
    Ack,
    ClientClosed,
    EditorClient,
    EditorError,
    Frame,
    ProjectView,
    Saved,
    Welcome,
)

WAIT = 2.0
PROJECT_ID = "0f000000-0000-4000-8000-000000000001"
SCENE_A = "0f000000-0000-4000-8000-000000000201"
SCENE_B = "0f000000-0000-4000-8000-000000000202"
SCENE_C = "0f000000-0000-4000-8000-000000000203"
CLIP_A = "0f000000-0000-4000-8000-000000000301"
CLIP_B = "0f000000-0000-4000-8000-000000000302"

PROJECT_ROW: Frame = {"id": PROJECT_ID, "title": "Demo: The Lighthouse", "status": "draft", "version": 1}
SCENES: list[Frame] = [
    {"id": SCENE_B, "project_id": PROJECT_ID, "scene_index": 1, "heading": "The lamp", "version": 1},
    {"id": SCENE_A, "project_id": PROJECT_ID, "scene_index": 0, "heading": "Dusk", "version": 1},
]
CLIPS: list[Frame] = [
    {
        "id": CLIP_A,
        "project_id": PROJECT_ID,
        "scene_id": SCENE_A,
        "order_index": 0,
        "prompt": "stairs",
        "version": 1,
    },
    {
        "id": CLIP_B,
        "project_id": PROJECT_ID,
        "scene_id": SCENE_B,
        "order_index": 1,
        "prompt": "beam",
        "version": 1,
    },
]


# ---- the scripted server ------------------------------------------------------------------------


class Peer:
    """The server's side of one client connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def recv(self) -> Frame:
        async with asyncio.timeout(WAIT):
            frame: Frame = json.loads(await self.ws.recv())
        return frame

    async def send(self, *frames: Frame | str) -> None:
        for frame in frames:
            await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def closed_by_client(self) -> tuple[int | None, str | None]:
        async with asyncio.timeout(WAIT):
            await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason


class ScriptedServer:
    """A WebSocket server on 127.0.0.1 whose connections the test drives by hand."""

    def __init__(self) -> None:
        self._peers: asyncio.Queue[Peer] = asyncio.Queue()
        self._server: Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/editor"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        await self._peers.put(Peer(ws))
        await ws.wait_closed()

    async def accept(self) -> Peer:
        async with asyncio.timeout(WAIT):
            return await self._peers.get()


def welcome(epoch: str = "e1", seq: int = 0) -> Frame:
    return {
        "type": "welcome",
        "protocol": 1,
        "project_id": PROJECT_ID,
        "epoch": epoch,
        "seq": seq,
        "session": "s1",
    }


def snapshot(
    epoch: str = "e1", seq: int = 0, *, saved_seq: int = 0, scenes: list[Frame] | None = None
) -> Frame:
    return {
        "type": "snapshot",
        "epoch": epoch,
        "seq": seq,
        "project": PROJECT_ROW,
        "scenes": SCENES if scenes is None else scenes,
        "clips": CLIPS,
        "saved_seq": saved_seq,
    }


def change(seq: int, table: str, op: str, row_id: str, **body: Any) -> Frame:
    frame: Frame = {"type": "change", "seq": seq, "table": table, "op": op, "id": row_id}
    frame.update(body)
    frame.update(origin="db", client_id=None, mid=None)
    return frame


def heading(seq: int, scene_id: str, text: str) -> Frame:
    return change(seq, "scenes", "update", scene_id, set={"heading": text})


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A started scripted server."""
    srv = ScriptedServer()
    await srv.start()
    yield srv
    await srv.stop()


ClientFactory = Callable[..., EditorClient]


@pytest.fixture
async def make_client(server: ScriptedServer) -> AsyncIterator[ClientFactory]:
    """Builds clients of the scripted server with short timeouts, and closes them after the test."""
    clients: list[EditorClient] = []

    def factory(**options: Any) -> EditorClient:
        options.setdefault("open_timeout", WAIT)
        options.setdefault("request_timeout", WAIT)
        client = EditorClient(server.url, PROJECT_ID, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def open_session(
    server: ScriptedServer, client: EditorClient, *, epoch: str = "e1", seq: int = 0, saved_seq: int = 0
) -> tuple[Peer, Frame, Welcome]:
    """Connect ``client``, answer its hello with welcome and snapshot; return the peer, hello and welcome."""
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    hello = await peer.recv()
    await peer.send(welcome(epoch, seq), snapshot(epoch, seq, saved_seq=saved_seq))
    async with asyncio.timeout(WAIT):
        result = await connecting
    return peer, hello, result


async def resync_session(server: ScriptedServer, *frames: Frame) -> tuple[Peer, Frame]:
    """Accept the client's next connection, read its hello and answer with ``frames``."""
    peer = await server.accept()
    hello = await peer.recv()
    await peer.send(*frames)
    return peer, hello


async def restarted(peer: Peer, client: EditorClient) -> asyncio.Task[Welcome]:
    """The daemon restarts (close 1012); once ``client`` has seen it, ask it to reconnect. Returns the
    reconnect, to await once the test answered the new connection (``resync_session``)."""
    await peer.close(1012)
    await client.wait_until(lambda: client.state == "closed")
    return asyncio.create_task(client.reconnect())


# ---- hello and connecting -----------------------------------------------------------------------


async def test_first_hello_holds_exactly_the_protocol_fields(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """The first hello carries exactly the protocol's fields, a UUID client_id and a null resume."""
    client = make_client()
    _, hello, _ = await open_session(server, client)
    assert hello == {
        "type": "hello",
        "protocol": 1,
        "project_id": PROJECT_ID,
        "client_id": client.client_id,
        "token": None,
        "resume": None,
    }
    assert str(uuid.UUID(client.client_id)) == client.client_id


async def test_hello_carries_the_given_client_id_and_token(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A client_id and token given to the client are the ones its hello sends."""
    client_id = str(uuid.uuid4())
    client = make_client(client_id=client_id, token="header.payload.signature")
    _, hello, _ = await open_session(server, client)
    assert (hello["client_id"], hello["token"]) == (client_id, "header.payload.signature")


async def test_a_token_function_is_asked_before_each_hello(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A token function gives each hello a fresh token: a reconnect, or a resync the client makes itself."""
    tokens = iter(["token.one", "token.two", "token.three"])

    async def fresh_token() -> str:
        await asyncio.sleep(0)
        return next(tokens)

    client = make_client(token=fresh_token)
    peer, hello, _ = await open_session(server, client)
    assert hello["token"] == "token.one"
    reconnecting = await restarted(peer, client)
    peer, hello = await resync_session(server, welcome("e1", 0))
    assert hello["token"] == "token.two"
    await reconnecting
    await peer.send(heading(2, SCENE_A, "two"))  # a gap: the client connects again by itself
    _, hello = await resync_session(server, welcome("e1", 0))
    assert hello["token"] == "token.three"
    assert client.token == "token.three"


async def test_a_plain_function_works_and_a_string_set_later_replaces_it(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    client = make_client(token=lambda: "from.a.function")
    peer, hello, _ = await open_session(server, client)
    assert hello["token"] == "from.a.function"
    client.token = "a.fixed.token"
    reconnecting = await restarted(peer, client)
    _, hello = await resync_session(server, welcome("e1", 0))
    assert hello["token"] == "a.fixed.token"
    await reconnecting


@pytest.mark.parametrize(
    ("source", "error", "fragment"),
    [
        pytest.param(lambda: 42, TypeError, "returned int, not a string or None", id="not a string"),
        pytest.param(lambda: 1 / 0, ZeroDivisionError, "division by zero", id="raises"),
    ],
)
async def test_a_token_function_that_fails_fails_the_opening_and_sends_nothing(
    server: ScriptedServer,
    make_client: ClientFactory,
    source: Callable[[], object],
    error: type[Exception],
    fragment: str,
) -> None:
    client = make_client(token=source)
    with pytest.raises(error, match=fragment):
        await client.connect()
    assert client.state == "closed"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await server.accept()


async def test_connect_returns_welcome_after_the_snapshot_fills_the_view(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """connect() returns the welcome once the snapshot's rows, epoch, seq and saved_seq are in the view."""
    client = make_client()
    _, _, result = await open_session(server, client, epoch="e7", seq=12, saved_seq=10)
    assert result == Welcome(PROJECT_ID, "e7", 12, "s1", resumed=False)
    assert (client.state, client.epoch, client.seq, client.saved_seq, client.session) == (
        "open",
        "e7",
        12,
        10,
        "s1",
    )
    assert client.view.project == PROJECT_ROW
    assert [row["id"] for row in client.view.ordered("scenes")] == [SCENE_A, SCENE_B]
    assert set(client.view.clips) == {CLIP_A, CLIP_B}


async def test_connect_times_out_without_a_welcome(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A server that never answers hello makes connect() raise TimeoutError and leaves the client closed."""
    client = make_client(open_timeout=0.2)
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    with pytest.raises(TimeoutError):
        await connecting
    assert client.state == "closed"


async def test_a_change_before_the_snapshot_is_a_protocol_error(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A change between welcome and the first snapshot makes the client close with 1002."""
    client = make_client()
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    await peer.send(welcome(), heading(1, SCENE_A, "x"))
    with pytest.raises(ClientClosed) as caught:
        await connecting
    assert caught.value.code == 1002
    assert (await peer.closed_by_client())[0] == 1002


async def test_connecting_twice_is_refused(server: ScriptedServer, make_client: ClientFactory) -> None:
    """connect() on an open client raises RuntimeError."""
    client = make_client()
    await open_session(server, client)
    with pytest.raises(RuntimeError, match="already connected"):
        await client.connect()


async def test_sending_before_connect_is_refused(make_client: ClientFactory) -> None:
    """A mutation before connect() raises RuntimeError and uses no mid."""
    client = make_client()
    with pytest.raises(RuntimeError, match="not connected"):
        client.send_patch("scenes", SCENE_A, {"heading": "x"})
    assert client.next_mid == 1


# ---- mutations, mids, acks and errors -----------------------------------------------------------


async def test_mutation_frames_have_the_protocol_shapes(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """patch, insert, delete, reorder and flush go out with the protocol's fields and rising mids."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    client.send_patch("projects", PROJECT_ID, {"title": "New"})
    client.send_insert("scenes", {"id": SCENE_C, "scene_index": 2})
    client.send_delete("clips", CLIP_B)
    client.send_reorder("scenes", [SCENE_B, SCENE_A])
    client.send_flush()
    assert [await peer.recv() for _ in range(5)] == [
        {"type": "patch", "mid": 1, "table": "projects", "id": PROJECT_ID, "set": {"title": "New"}},
        {"type": "insert", "mid": 2, "table": "scenes", "row": {"id": SCENE_C, "scene_index": 2}},
        {"type": "delete", "mid": 3, "table": "clips", "id": CLIP_B},
        {"type": "reorder", "mid": 4, "table": "scenes", "ids": [SCENE_B, SCENE_A]},
        {"type": "flush", "mid": 5},
    ]


async def test_mids_keep_rising_across_reconnects(server: ScriptedServer, make_client: ClientFactory) -> None:
    """Mids start at first_mid and keep rising after a reconnect instead of starting over."""
    client = make_client(first_mid=41)
    peer, _, _ = await open_session(server, client)
    assert [client.send_flush(), client.send_flush()] == [41, 42]
    assert [(await peer.recv())["mid"] for _ in range(2)] == [41, 42]
    await peer.send({"type": "ack", "mid": 41, "seq": 0}, {"type": "ack", "mid": 42, "seq": 0})
    await client.wait_ack(42)
    await peer.close(1012, "restarting")
    await client.wait_until(lambda: client.state == "closed")

    reconnecting = asyncio.create_task(client.reconnect())
    peer2, _ = await resync_session(server, welcome(), snapshot())
    await reconnecting
    assert client.send_flush() == 43
    assert (await peer2.recv())["mid"] == 43


async def test_acks_reach_the_call_that_sent_their_mid(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """Acks answered out of order still resolve each waiting call with its own mid and seq."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    first = asyncio.create_task(client.patch("scenes", SCENE_A, {"heading": "one"}))
    second = asyncio.create_task(client.patch("scenes", SCENE_B, {"heading": "two"}))
    assert [(await peer.recv())["mid"] for _ in range(2)] == [1, 2]
    await peer.send({"type": "ack", "mid": 2, "seq": 7}, {"type": "ack", "mid": 1, "seq": 6})
    assert await second == Ack(2, 7)
    assert await first == Ack(1, 6)
    assert client.acked_seq == 7
    assert client.unacked == []


async def test_an_error_frame_raises_in_the_call_of_its_mid(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """An error naming a mid raises EditorError in that call only; the other call gets its ack."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    good = asyncio.create_task(client.patch("scenes", SCENE_A, {"heading": "ok"}))
    bad = asyncio.create_task(client.patch("scenes", SCENE_A, {"colour": "red"}))
    await peer.recv()
    await peer.recv()
    await peer.send(
        {"type": "error", "mid": 2, "code": "bad_request", "message": "scenes.colour is not a field"},
        {"type": "ack", "mid": 1, "seq": 1},
    )
    with pytest.raises(EditorError) as caught:
        await bad
    assert (caught.value.code, caught.value.mid, caught.value.message) == (
        "bad_request",
        2,
        "scenes.colour is not a field",
    )
    assert await good == Ack(1, 1)
    assert list(client.errors) == []


async def test_an_answer_stays_available_to_a_later_wait_ack(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """wait_ack() after the answer arrived still returns the ack or raises the error."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    acked, refused = client.send_flush(), client.send_flush()
    await peer.send(
        {"type": "ack", "mid": acked, "seq": 0},
        {"type": "error", "mid": refused, "code": "rate_limited", "message": "slow down"},
    )
    await client.next_frame("error")
    assert await client.wait_ack(acked) == Ack(acked, 0)
    with pytest.raises(EditorError, match="rate_limited"):
        await client.wait_ack(refused)
    with pytest.raises(KeyError):
        await client.wait_ack(99)


async def test_an_error_for_no_waiting_mid_is_kept(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """An error with a null mid (or an already answered mid) lands in client.errors."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(
        {"type": "error", "mid": None, "code": "too_large", "message": "frame over 1048576 bytes"}
    )
    frame = await client.next_frame("error")
    assert frame["code"] == "too_large"
    assert [(e.code, e.mid) for e in client.errors] == [("too_large", None)]


async def test_an_unanswered_call_times_out(server: ScriptedServer, make_client: ClientFactory) -> None:
    """A mutation without an answer raises TimeoutError after its timeout and stays unacked."""
    client = make_client()
    await open_session(server, client)
    with pytest.raises(TimeoutError):
        await client.flush(timeout=0.05)
    assert client.unacked == [1]


# ---- the view -----------------------------------------------------------------------------------


async def test_changes_update_the_view(server: ScriptedServer, make_client: ClientFactory) -> None:
    """Insert, update and delete changes on scenes, clips and the project reach the view in seq order."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    new_scene = {
        "id": SCENE_C,
        "project_id": PROJECT_ID,
        "scene_index": 2,
        "heading": "Homeward",
        "version": 1,
    }
    await peer.send(
        change(1, "scenes", "insert", SCENE_C, row=new_scene),
        change(2, "clips", "update", CLIP_A, set={"prompt": "spiral stairs", "version": 2}),
        change(3, "scenes", "delete", SCENE_B),
        change(4, "projects", "update", PROJECT_ID, set={"title": "Lighthouse"}),
    )
    await client.wait_seq(4)
    assert [row["id"] for row in client.view.ordered("scenes")] == [SCENE_A, SCENE_C]
    assert client.view.scenes[SCENE_C] == new_scene
    assert client.view.clips[CLIP_A]["prompt"] == "spiral stairs"
    assert client.view.clips[CLIP_A]["version"] == 2
    assert client.view.project is not None
    assert client.view.project["title"] == "Lighthouse"
    assert [(await client.next_frame("change"))["seq"] for _ in range(4)] == [1, 2, 3, 4]


async def test_a_repeated_change_is_applied_once(server: ScriptedServer, make_client: ClientFactory) -> None:
    """A change whose seq was already applied is ignored without reconnecting."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(1, SCENE_A, "first"), heading(1, SCENE_A, "again"), heading(2, SCENE_B, "next"))
    await client.wait_seq(2)
    assert client.view.scenes[SCENE_A]["heading"] == "first"
    assert client.resyncs == 0


async def test_a_later_snapshot_replaces_the_view(server: ScriptedServer, make_client: ClientFactory) -> None:
    """A snapshot in the middle of a session (after a send queue overflow) resets the view and seq."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(snapshot(seq=30, saved_seq=25, scenes=[SCENES[0]]))
    await client.wait_seq(30)
    assert list(client.view.scenes) == [SCENE_B]
    assert client.saved_seq == 25


async def test_a_later_snapshot_makes_the_client_resend_unanswered_mids(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """After a mid-session snapshot (a dropped backlog), unanswered mutations are sent again unchanged."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.patch("scenes", SCENE_A, {"heading": "lost ack"}))
    sent = await peer.recv()
    await peer.send(snapshot(seq=1))
    assert await peer.recv() == sent
    await peer.send({"type": "ack", "mid": sent["mid"], "seq": 1})
    assert await waiting == Ack(1, 1)


def test_view_orders_by_index_then_id() -> None:
    """ProjectView.ordered sorts rows by their index field and breaks ties by id."""
    view = ProjectView()
    view.reset(
        PROJECT_ROW,
        [],
        [{"id": "b", "order_index": 1}, {"id": "c", "order_index": 0}, {"id": "a", "order_index": 1}],
    )
    assert [row["id"] for row in view.ordered("clips")] == ["c", "a", "b"]
    assert view.as_dict()["clips"] == view.ordered("clips")
    assert view.rows("projects") == {PROJECT_ID: PROJECT_ROW}


def test_view_refuses_an_update_of_a_row_it_does_not_hold() -> None:
    """ProjectView.apply reports an update of an unknown row, and of another project, as not fitting."""
    view = ProjectView()
    view.reset(PROJECT_ROW, SCENES, CLIPS)
    assert not view.apply({"table": "scenes", "op": "update", "id": "nope", "set": {"heading": "x"}})
    assert not view.apply({"table": "projects", "op": "update", "id": "other", "set": {"title": "x"}})
    assert view.apply({"table": "clips", "op": "delete", "id": "nope"})


def test_view_drops_a_deleted_project() -> None:
    """A delete change of the project empties ProjectView.project."""
    view = ProjectView()
    view.reset(PROJECT_ROW, SCENES, CLIPS)
    assert view.apply({"table": "projects", "op": "delete", "id": PROJECT_ID})
    assert view.project is None
    assert view.rows("projects") == {}


# ---- resume, gaps and resends -------------------------------------------------------------------


async def test_reconnect_resumes_from_the_last_applied_seq(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """reconnect() sends resume {epoch, seq} and applies the replayed changes instead of a snapshot."""
    client = make_client()
    peer, _, _ = await open_session(server, client, epoch="e1", seq=5)
    await peer.send(heading(6, SCENE_A, "six"))
    await client.wait_seq(6)
    await peer.close(1012, "daemon restarting")
    await client.wait_until(lambda: client.state == "closed")

    reconnecting = asyncio.create_task(client.reconnect())
    _, hello = await resync_session(
        server, welcome("e1", 8), heading(7, SCENE_A, "seven"), heading(8, SCENE_B, "eight")
    )
    assert hello["resume"] == {"epoch": "e1", "seq": 6}
    assert await reconnecting == Welcome(PROJECT_ID, "e1", 8, "s1", resumed=True)
    assert client.seq == 8
    assert (client.view.scenes[SCENE_A]["heading"], client.view.scenes[SCENE_B]["heading"]) == (
        "seven",
        "eight",
    )


async def test_reconnect_into_a_new_epoch_takes_the_snapshot(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """When the server answers a resume with another epoch, the snapshot replaces the view and the epoch."""
    client = make_client()
    peer, _, _ = await open_session(server, client, epoch="e1", seq=5)
    reconnecting = await restarted(peer, client)
    # The new epoch happens to be at the same seq: only the epoch tells the client its seq means nothing now.
    _, hello = await resync_session(server, welcome("e2", 5), snapshot("e2", 5, scenes=[]))
    assert hello["resume"] == {"epoch": "e1", "seq": 5}
    assert (await reconnecting).resumed is False
    assert (client.epoch, client.seq, client.view.scenes) == ("e2", 5, {})


async def test_a_gap_makes_the_client_resume(server: ScriptedServer, make_client: ClientFactory) -> None:
    """A change past the next seq makes the client reconnect with resume from the last seq it applied."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(1, SCENE_A, "one"), heading(3, SCENE_A, "three"))
    assert await peer.closed_by_client() == (1000, "resync")

    _, hello = await resync_session(
        server, welcome("e1", 3), heading(2, SCENE_B, "two"), heading(3, SCENE_A, "three")
    )
    assert hello["resume"] == {"epoch": "e1", "seq": 1}
    await client.wait_until(lambda: client.state == "open" and client.seq == 3)
    assert (client.view.scenes[SCENE_A]["heading"], client.view.scenes[SCENE_B]["heading"]) == (
        "three",
        "two",
    )
    assert client.resyncs == 1


async def test_a_gap_without_resume_asks_for_a_snapshot(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """With resume off, a gap makes the client reconnect with a null resume and take the snapshot."""
    client = make_client(resume=False)
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(2, SCENE_A, "two"))
    _, hello = await resync_session(server, welcome("e1", 2), snapshot("e1", 2))
    assert hello["resume"] is None
    await client.wait_until(lambda: client.state == "open" and client.seq == 2)


async def test_an_update_of_an_unknown_row_asks_for_a_snapshot(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A change that updates a row the view lacks makes the client reconnect for a snapshot."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(1, "0f000000-0000-4000-8000-00000000dead", "ghost"))
    _, hello = await resync_session(server, welcome("e1", 1), snapshot("e1", 1))
    assert hello["resume"] is None
    await client.wait_until(lambda: client.state == "open" and client.seq == 1)


async def test_a_resumed_stream_with_a_gap_falls_back_to_a_snapshot(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """If the replayed changes after a resume skip a seq, the client connects again without resume."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    reconnecting = await restarted(peer, client)
    _, first = await resync_session(server, welcome("e1", 3), heading(2, SCENE_A, "skipped one"))
    _, second = await resync_session(server, welcome("e1", 3), snapshot("e1", 3))
    assert (first["resume"], second["resume"]) == ({"epoch": "e1", "seq": 0}, None)
    assert (await reconnecting).resumed is False
    assert client.seq == 3


async def test_a_gap_right_after_the_snapshot_is_recovered(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A gap in the frames right after the snapshot still lets connect() return, then the client resumes."""
    client = make_client()
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    await peer.send(welcome("e1", 0), snapshot("e1", 0), heading(2, SCENE_A, "two"))
    assert (await connecting).resumed is False
    _, hello = await resync_session(
        server, welcome("e1", 2), heading(1, SCENE_B, "one"), heading(2, SCENE_A, "two")
    )
    assert hello["resume"] == {"epoch": "e1", "seq": 0}
    await client.wait_until(lambda: client.state == "open" and client.seq == 2)


@pytest.mark.parametrize("yields", [0, 1, 2, 3, 5, 8])
async def test_close_while_connect_finishes_does_not_hang(
    server: ScriptedServer, make_client: ClientFactory, yields: int
) -> None:
    """close() racing the last step of connect() ends both calls and leaves the client closed."""
    client = make_client()
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    await peer.send(welcome(), snapshot())
    for _ in range(yields):
        await asyncio.sleep(0)
    async with asyncio.timeout(WAIT):
        await client.close()
        outcome = (await asyncio.gather(connecting, return_exceptions=True))[0]
    assert isinstance(outcome, Welcome | ClientClosed)
    assert client.state == "closed"
    assert await peer.closed_by_client() == (1000, "")


async def test_a_call_waiting_through_a_gap_gets_its_ack(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A mutation unanswered at a gap reconnect is sent again with its mid, and its call gets the ack."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.patch("scenes", SCENE_A, {"heading": "kept"}))
    sent = await peer.recv()
    await peer.send(heading(2, SCENE_A, "after a gap"))

    peer2, _ = await resync_session(
        server, welcome("e1", 2), heading(1, SCENE_A, "kept"), heading(2, SCENE_A, "x")
    )
    assert await peer2.recv() == sent
    await peer2.send({"type": "ack", "mid": sent["mid"], "seq": 1})
    assert await waiting == Ack(1, 1)


async def test_unacked_mutations_are_resent_first_after_reconnect(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """After a server close, reconnect() resends unanswered mutations with their mids before new ones."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.patch("scenes", SCENE_A, {"heading": "durable?"}))
    sent = await peer.recv()
    await peer.close(1012, "daemon restarting")
    with pytest.raises(ClientClosed) as caught:
        await waiting
    assert caught.value.code == 1012

    reconnecting = asyncio.create_task(client.reconnect())
    peer2, _ = await resync_session(server, welcome("e2", 0), snapshot("e2", 0))
    await reconnecting
    later = client.send_flush()
    assert [await peer2.recv(), (await peer2.recv())["mid"]] == [sent, later]
    await peer2.send({"type": "ack", "mid": 1, "seq": 0})
    assert await client.wait_ack(1) == Ack(1, 0)


async def test_without_resend_an_unacked_call_fails_on_reconnect(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """With resend_unacked off, a mutation sent before a gap reconnect fails and is not sent again."""
    client = make_client(resend_unacked=False)
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.flush())
    await peer.recv()
    await peer.send(heading(2, SCENE_A, "gap"))
    peer2, _ = await resync_session(server, welcome("e1", 0), snapshot("e1", 0))
    with pytest.raises(ClientClosed):
        await waiting
    assert client.unacked == []
    client.send_flush()
    assert (await peer2.recv())["mid"] == 2


async def test_resend_unacked_sends_the_same_frames_again(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """resend_unacked() queues every unanswered mutation again, unchanged."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    client.send_patch("scenes", SCENE_A, {"heading": "a"})
    client.send_flush()
    first = [await peer.recv(), await peer.recv()]
    await peer.send({"type": "ack", "mid": 2, "seq": 0})
    await client.wait_ack(2)
    assert client.resend_unacked() == [1]
    assert await peer.recv() == first[0]


# ---- saved, pings, events -----------------------------------------------------------------------


async def test_wait_saved_waits_until_the_acked_seq_is_saved(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """wait_saved() returns only when a saved frame covers the last acked seq."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send({"type": "ack", "mid": 1, "seq": 4})
    await client.next_frame("ack")
    saving = asyncio.create_task(client.wait_saved())
    await peer.send({"type": "saved", "seq": 3, "at": "2026-11-26T10:00:00Z"})
    await client.next_frame("saved")
    assert not saving.done()
    await peer.send({"type": "saved", "seq": 4, "at": "2026-11-26T10:00:01Z"})
    assert await saving == Saved(4, "2026-11-26T10:00:01Z")
    assert await client.wait_saved(2) == Saved(4, "2026-11-26T10:00:01Z")


async def test_wait_saved_times_out_when_nothing_is_saved(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """wait_saved() raises TimeoutError when no saved frame reaches the seq in time."""
    client = make_client()
    await open_session(server, client, saved_seq=2)
    assert await client.wait_saved(2) == Saved(2, None)
    with pytest.raises(TimeoutError):
        await client.wait_saved(3, timeout=0.05)


async def test_ping_returns_the_pong_that_echoes_t(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """ping() sends t and returns when the pong with the same t comes back."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    pinging = asyncio.create_task(client.ping({"n": 1, "at": "now"}))
    assert await peer.recv() == {"type": "ping", "t": {"n": 1, "at": "now"}}
    await peer.send({"type": "pong", "t": "other"}, {"type": "pong", "t": {"at": "now", "n": 1}})
    pong = await pinging
    assert pong.t == {"at": "now", "n": 1}
    assert pong.rtt >= 0


async def test_events_and_presence_reach_the_caller(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """event and presence frames go to the on_event callback, to next_event() and (presence) to editors."""
    seen: list[Frame] = []
    client = make_client(on_event=seen.append)
    peer, _, _ = await open_session(server, client)
    presence = {"type": "presence", "editors": [{"client_id": client.client_id, "user_id": None}]}
    progress = {"type": "event", "topic": "render.progress", "data": {"clip_id": CLIP_A, "progress": 0.5}}
    await peer.send(presence, progress)
    assert await client.next_event("render.progress") == progress
    assert seen == [presence, progress]
    assert client.editors == presence["editors"]


async def test_a_failing_event_callback_does_not_break_the_client(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """An exception in on_event is logged and the frames after it are still handled."""

    def explode(frame: Frame) -> None:
        raise RuntimeError("callback bug")

    client = make_client(on_event=explode)
    peer, _, _ = await open_session(server, client)
    await peer.send({"type": "event", "topic": "t", "data": {}}, heading(1, SCENE_A, "still here"))
    await client.wait_seq(1)
    assert client.state == "open"


# ---- closes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"), [(4401, "unauthorized"), (4403, "forbidden"), (4404, "not_found"), (4408, None)]
)
async def test_a_close_during_hello_raises_with_its_code(
    server: ScriptedServer, make_client: ClientFactory, code: int, error: str | None
) -> None:
    """A server that refuses the hello makes connect() raise ClientClosed with the close code and reason."""
    client = make_client()
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    if error is not None:
        await peer.send({"type": "error", "mid": None, "code": error, "message": "refused"})
    await peer.close(code, "refused")
    with pytest.raises(ClientClosed) as caught:
        await connecting
    assert isinstance(caught.value, ConnectionClosed)
    assert (caught.value.code, caught.value.reason) == (code, "refused")
    assert (client.state, client.close_code, client.close_reason) == ("closed", code, "refused")
    assert [e.code for e in client.errors] == ([error] if error else [])


@pytest.mark.parametrize("code", [4429, 1012])
async def test_a_close_during_a_session_fails_waiting_calls(
    server: ScriptedServer, make_client: ClientFactory, code: int
) -> None:
    """A server close makes waiting calls, later waits and later sends raise ClientClosed with its code."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.flush())
    await peer.recv()
    await peer.close(code, "bye")
    with pytest.raises(ClientClosed) as caught:
        await waiting
    assert caught.value.code == code
    assert (client.close_code, client.close_reason) == (code, "bye")
    with pytest.raises(ClientClosed):
        await client.wait_seq(1)
    with pytest.raises(ClientClosed):
        client.send_flush()


async def test_a_malformed_server_frame_closes_with_1002(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A frame that breaks the protocol makes the client close with 1002 and fail its waiting calls."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.flush())
    await peer.recv()
    await peer.send(
        {"type": "change", "seq": "one", "table": "scenes", "op": "update", "id": SCENE_A, "set": {}}
    )
    assert (await peer.closed_by_client())[0] == 1002
    with pytest.raises(ClientClosed) as caught:
        await waiting
    assert caught.value.code == 1002
    assert "change.seq" in caught.value.reason


async def test_a_non_json_frame_closes_with_1002(server: ScriptedServer, make_client: ClientFactory) -> None:
    """Text that is not a JSON object makes the client close with 1002."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send("[1, 2]")
    assert (await peer.closed_by_client())[0] == 1002
    assert client.close_code == 1002


async def test_frames_yields_every_frame_until_close(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """frames() yields each server frame in order, the opening ones too, and ends when the client closes."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(1, SCENE_A, "x"), {"type": "pong", "t": 1})
    types: list[str] = []
    async with asyncio.timeout(WAIT):
        async for frame in client.frames():
            types.append(frame["type"])
            if frame["type"] == "pong":
                await client.close()
    assert types == ["welcome", "snapshot", "change", "pong"]
    assert client.close_code == 1000


async def test_close_fails_waiting_calls_with_1000(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """close() ends the session: a waiting call raises ClientClosed with code 1000."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.flush())
    await peer.recv()
    await client.close()
    with pytest.raises(ClientClosed) as caught:
        await waiting
    assert caught.value.code == 1000
    assert client.state == "closed"


async def test_the_client_works_as_an_async_context_manager(server: ScriptedServer) -> None:
    """async with connects on entry and closes on exit."""
    client = EditorClient(server.url, PROJECT_ID, open_timeout=WAIT)

    async def serve_one() -> Peer:
        peer = await server.accept()
        await peer.recv()
        await peer.send(welcome(), snapshot())
        return peer

    serving = asyncio.create_task(serve_one())
    async with client:
        inside = client.state
    peer = await serving
    assert await peer.closed_by_client() == (1000, "")
    assert (inside, client.state) == ("open", "closed")


# ---- more of the surface ------------------------------------------------------------------------


async def test_every_typed_call_waits_for_its_ack(server: ScriptedServer, make_client: ClientFactory) -> None:
    """insert, delete, reorder and flush each return the ack of their own mid."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    calls = [
        asyncio.create_task(client.insert("clips", {"id": "c3", "order_index": 2})),
        asyncio.create_task(client.delete("scenes", SCENE_B)),
        asyncio.create_task(client.reorder("clips", [CLIP_B, CLIP_A])),
        asyncio.create_task(client.flush()),
    ]
    for seq in range(1, 5):
        mid = (await peer.recv())["mid"]
        await peer.send({"type": "ack", "mid": mid, "seq": seq})
    assert await asyncio.gather(*calls) == [Ack(1, 1), Ack(2, 2), Ack(3, 3), Ack(4, 4)]


async def test_an_error_after_the_ack_is_kept(server: ScriptedServer, make_client: ClientFactory) -> None:
    """An error naming an already acked mid (a conflict after a remote delete) lands in client.errors."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    mid = client.send_patch("scenes", SCENE_A, {"heading": "mine"})
    await peer.send({"type": "ack", "mid": mid, "seq": 1})
    assert await client.wait_ack(mid) == Ack(mid, 1)
    await peer.send({"type": "error", "mid": mid, "code": "conflict", "message": "scene was deleted"})
    await client.next_frame("error")
    assert [(e.code, e.mid) for e in client.errors] == [("conflict", mid)]
    assert await client.wait_ack(mid) == Ack(mid, 1)


async def test_send_raw_sends_the_frame_unchanged(server: ScriptedServer, make_client: ClientFactory) -> None:
    """send_raw() sends text or a mapping as given, without a mid."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    client.send_raw('{"type":"patch","extra":true}')
    client.send_raw({"type": "mystery"})
    assert await peer.recv() == {"type": "patch", "extra": True}
    assert await peer.recv() == {"type": "mystery"}
    assert client.next_mid == 1


async def test_a_mutation_that_is_not_json_is_refused_at_once(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A value JSON cannot carry raises in send_patch() and uses no mid."""
    client = make_client()
    await open_session(server, client)
    with pytest.raises(ValueError, match="JSON"):
        client.send_patch("clips", CLIP_A, {"duration": float("nan")})
    assert (client.next_mid, client.unacked) == (1, [])


async def test_a_ping_in_flight_is_sent_again_after_a_gap(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A ping without t gets a number, and an unanswered ping is sent again on the resumed connection."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    pinging = asyncio.create_task(client.ping())
    assert await peer.recv() == {"type": "ping", "t": 1}
    await peer.send(heading(2, SCENE_A, "gap"))
    peer2, _ = await resync_session(server, welcome("e1", 0))
    assert await peer2.recv() == {"type": "ping", "t": 1}
    await peer2.send({"type": "pong", "t": 1})
    assert (await pinging).t == 1


async def test_unknown_frame_types_are_passed_on(server: ScriptedServer, make_client: ClientFactory) -> None:
    """A frame of a type the client does not know is kept for next_frame() and changes nothing else."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send({"type": "notice_from_the_future", "x": 1})
    assert (await client.next_frame("notice_from_the_future"))["x"] == 1
    assert client.state == "open"


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ([{**welcome(), "project_id": "someone-else"}], "welcome.project_id"),
        ([{**welcome(), "protocol": 2}], "welcome.protocol"),
        ([welcome(), welcome()], "second welcome"),
        ([snapshot()], "snapshot before welcome"),
        ([heading(1, SCENE_A, "x")], "change before welcome"),
        ([welcome(), {**snapshot(), "scenes": [{"heading": "no id"}]}], "snapshot.scenes"),
        ([{"type": 7}], "string type"),
    ],
)
async def test_a_broken_opening_closes_with_1002(
    server: ScriptedServer, make_client: ClientFactory, frames: list[Frame], words: str
) -> None:
    """An opening that breaks the protocol makes connect() raise ClientClosed 1002 naming the problem."""
    client = make_client()
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    await peer.recv()
    await peer.send(*frames)
    with pytest.raises(ClientClosed) as caught:
        await connecting
    assert caught.value.code == 1002
    assert words in caught.value.reason
    assert (await peer.closed_by_client())[0] == 1002


@pytest.mark.parametrize(
    "bad", [{"table": 7}, {"op": "upsert"}, {"op": "insert", "row": None}, {"id": 3}, {"set": [1]}]
)
async def test_a_malformed_change_closes_with_1002(
    server: ScriptedServer, make_client: ClientFactory, bad: Frame
) -> None:
    """A change whose table is not a string, an unknown op, or a missing id, row or set: close with 1002."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send({**heading(1, SCENE_A, "x"), **bad})
    assert (await peer.closed_by_client())[0] == 1002
    assert client.state == "closed"


async def test_a_change_of_a_side_table_is_kept_and_counts_in_the_stream(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A change of an export (a table editors follow but do not edit) is kept in ``view.sides``."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    export = {"id": "e0000000-0000-4000-8000-000000000001", "status": "queued", "progress": 0.0}
    await peer.send(
        {
            "type": "change",
            "seq": 1,
            "table": "exports",
            "op": "insert",
            "id": export["id"],
            "row": export,
            "origin": "db",
            "client_id": None,
            "mid": None,
        }
    )
    await peer.send(
        {
            "type": "change",
            "seq": 2,
            "table": "exports",
            "op": "update",
            "id": export["id"],
            "set": {"progress": 0.5},
            "origin": "db",
            "client_id": None,
            "mid": None,
        }
    )
    await client.wait_seq(2)
    assert client.view.sides["exports"][str(export["id"])]["progress"] == 0.5
    assert client.state == "open"


async def test_gaps_that_keep_coming_end_the_session(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """A server whose stream has a gap after every resume is dropped with 1002 after a few reconnects."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    await peer.send(heading(2, SCENE_A, "gap"))
    for _ in range(3):
        peer, _ = await resync_session(server, welcome("e1", 0), heading(2, SCENE_A, "gap"))
    assert (await peer.closed_by_client())[0] == 1002
    assert client.resyncs == 3
    with pytest.raises(ClientClosed, match="1002"):
        await client.wait_seq(2)


async def test_a_failed_resync_closes_the_client_with_the_servers_code(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """When the reconnect after a gap is refused, waiting calls raise ClientClosed with the refusal's code."""
    client = make_client()
    peer, _, _ = await open_session(server, client)
    waiting = asyncio.create_task(client.flush())
    await peer.recv()
    await peer.send(heading(2, SCENE_A, "gap"))
    peer2 = await server.accept()
    await peer2.recv()
    await peer2.close(4403, "no longer a member")
    with pytest.raises(ClientClosed) as caught:
        await waiting
    assert (caught.value.code, client.close_code, client.state) == (4403, 4403, "closed")


async def test_reconnect_reports_a_server_that_is_gone(
    make_client: ClientFactory, server: ScriptedServer
) -> None:
    """reconnect() to a server that is gone raises ConnectionRefusedError; the client stays closed."""
    client = make_client()
    await open_session(server, client)
    await server.stop()
    await client.wait_until(lambda: client.state == "closed")
    assert client.close_code == 1001  # the server's going-away close
    with pytest.raises(ConnectionRefusedError):
        await client.reconnect()
    assert client.state == "closed"
    await server.start()  # the fixture stops it again


async def test_the_oldest_frames_are_dropped_past_the_buffer(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """Past frame_buffer unread frames, the oldest go and frames_dropped counts them."""
    client = make_client(frame_buffer=3)
    peer, _, _ = await open_session(server, client)
    await peer.send(*(heading(seq, SCENE_A, str(seq)) for seq in range(1, 4)))
    await client.wait_seq(3)
    assert client.frames_dropped == 2  # welcome and snapshot made room for the three changes
    assert [(await client.next_frame())["seq"] for _ in range(3)] == [1, 2, 3]


async def test_a_failure_inside_the_client_ends_the_session_with_1011(
    server: ScriptedServer, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception while handling a frame closes with 1011 and fails the waiting calls."""
    client = make_client()
    peer, _, _ = await open_session(server, client)

    def broken(change: Frame) -> bool:
        raise RuntimeError("bug")

    monkeypatch.setattr(client.view, "apply", broken)
    await peer.send(heading(1, SCENE_A, "x"))
    assert (await peer.closed_by_client())[0] == 1011
    with pytest.raises(ClientClosed, match="1011"):
        await client.wait_seq(1)


def test_client_closed_names_the_code() -> None:
    """ClientClosed reads as its code, the code's meaning and the reason."""
    assert str(ClientClosed(4429, "too many mutations")) == (
        "connection closed with code 4429 (rate limited): too many mutations"
    )
    assert str(ClientClosed(1006, "")) == "connection closed with code 1006"


def test_view_takes_a_project_insert_and_ignores_other_deletes() -> None:
    """A project insert sets the project row; a delete naming another project leaves it."""
    view = ProjectView()
    view.apply({"table": "projects", "op": "insert", "id": PROJECT_ID, "row": {"title": "t"}})
    assert view.project == {"title": "t", "id": PROJECT_ID}
    view.apply({"table": "projects", "op": "delete", "id": "another"})
    assert view.project is not None


# ---- the example session of docs/protocol.md ---------------------------------------------------


def example_frames(receiver: str) -> list[Frame]:
    """The frames that ``receiver`` (A or B) gets in the example session of docs/protocol.md, in order."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    example = text.split("## 15. Example session", 1)[1]
    frames = []
    for line in example.splitlines():
        match = re.match(r"^>(A|B|AB) +(\{.*\})$", line)
        if match and receiver in match.group(1):
            frames.append(json.loads(match.group(2)))
    return frames


async def test_the_documented_example_session_replays_through_the_client(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    """Editor A's side of the documented example session is a stream the client follows to the end."""
    frames = example_frames("A")
    assert [frame["type"] for frame in frames[:2]] == ["welcome", "snapshot"]
    client = make_client(client_id="aa0c7d1e-2f3a-4b5c-8d9e-0a1b2c3d4e01")
    connecting = asyncio.create_task(client.connect())
    peer = await server.accept()
    assert (await peer.recv())["resume"] is None
    await peer.send(*frames)
    await connecting
    await client.wait_until(lambda: client.saved_seq == 11)
    assert (client.state, client.seq, client.resyncs) == ("open", 11, 0)
    assert client.view.project is not None
    assert client.view.project["title"] == "The Lighthouse"
    assert [(row["heading"], row["scene_index"]) for row in client.view.ordered("scenes")] == [
        ("The lamp", 0),
        ("Nightfall", 1),
        ("Homeward", 2),
    ]
    assert client.view.clips["6a1f0c3e-9b2d-4c7a-8e5f-1d2c3b4a5f60"]["project_id"] == PROJECT_ID
    assert [(e.code, e.mid) for e in client.errors] == [("bad_request", 2)]
    assert len(client.editors) == 2


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("ws://127.0.0.1:8765/v1/editor", "ws://127.0.0.1:8765/v1/editor"),
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/v1/editor"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/v1/editor"),
        ("http://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/editor"),
        ("https://studio.example.com/syncd/", "wss://studio.example.com/syncd/v1/editor"),
        ("http://[::1]:8765/syncd/v1/editor", "ws://[::1]:8765/syncd/v1/editor"),
        ("wss://studio.example.com/live", "wss://studio.example.com/live"),
    ],
)
def test_the_editor_url_is_read_as_the_typescript_client_reads_it(given: str, dialled: str) -> None:
    """The daemon's address, its API's as ``syncd run`` prints it, or the editor URL: what is dialled
    (the TypeScript client's cases, in clients/js/test/client.test.mjs)."""
    assert EditorClient(given, str(uuid.uuid4())).url == dialled
