"""Hostile input to a running daemon: frames that Python can parse but JSON readers cannot take back,
frames that break the parser itself, and malformed WebSocket handshakes.

Each is refused with the documented answer (an ``error`` frame, or HTTP 400), changes nothing, costs
no traceback in the log, and leaves the daemon and the connection serving.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import WAIT, DaemonFactory, RawFactory, show_project
from tests.support.daemon import DaemonProcess
from tests.support.editor import Frame, RawEditor

MID = 5

# ---- frames -------------------------------------------------------------------------------------


@dataclass
class Joined:
    """A daemon with the default limits, and an editor joined to its demo project."""

    daemon: DaemonProcess
    editor: RawEditor
    snapshot: Frame


@pytest.fixture
async def joined(start_daemon: DaemonFactory, raw_editor: RawFactory) -> Joined:
    """A daemon of this test (1 MiB frames, so the parser's own limits are reached before the size)."""
    daemon = start_daemon()
    editor = await raw_editor(daemon.url)
    snapshot = await editor.join(daemon.project_id)
    editor.next_mid = MID + 1
    return Joined(daemon, editor, snapshot)


def _patch(table: str, row_id: str, set_json: str) -> str:
    """A patch frame as JSON text, with ``set`` spliced in verbatim (escapes and NaN kept as written)."""
    return f'{{"type":"patch","mid":{MID},"table":"{table}","id":"{row_id}","set":{set_json}}}'


def _hostile_frames(joined: Joined) -> Iterator[tuple[str, str | bytes, int | None, str]]:
    """(name, frame, mid of the error, a fragment of its message) for each hostile frame."""
    project = joined.daemon.project_id
    scene = joined.snapshot["scenes"][0]["id"]
    clip = str(uuid.uuid4())
    yield "surrogate key", _patch("projects", project, '{"settings":{"\\udfff":1}}'), MID, "settings.\\udfff"
    yield (
        "deep surrogate value",
        f'{{"type":"insert","mid":{MID},"table":"clips","row":{{"id":"{clip}","metadata":{{"a":[0,{{"b":"x\\ud800"}}]}}}}}}',
        MID,
        "insert.row.metadata.a.1.b",
    )
    yield "surrogate text", _patch("scenes", scene, '{"heading":"\\udc00 dusk"}'), MID, "patch.set.heading"
    for constant in ("NaN", "Infinity", "-Infinity", "1e400"):
        yield (
            constant,
            _patch("projects", project, f'{{"settings":{{"fps":{constant}}}}}'),
            MID,
            "settings.fps",
        )
    yield (
        "unsafe integer",
        _patch("projects", project, '{"settings":{"n":9007199254740993}}'),
        MID,
        "settings.n",
    )
    yield "too deep", '{"type":"ping","t":' + "[" * 100_000 + "]" * 100_000 + "}", None, "nested deeper"
    yield "5000 digits", '{"type":"ping","t":' + "7" * 5000 + "}", None, "digits"
    yield "surrogate in ping", '{"type":"ping","t":"\\udfff"}', None, "ping.t"
    yield "UTF-16 binary", json.dumps({"type": "ping", "t": 1}).encode("utf-16"), None, "UTF-8"


async def test_hostile_frames_get_bad_request_and_change_nothing(
    joined: Joined, raw_editor: RawFactory
) -> None:
    """Each hostile frame gets ``bad_request`` naming the field, on a connection that stays open."""
    daemon, editor = joined.daemon, joined.editor
    before = show_project(daemon, daemon.project_id)
    logged = len(daemon.stderr)
    for name, frame, mid, fragment in _hostile_frames(joined):
        await editor.send(frame)
        error = await editor.expect("error")
        assert (error["code"], error["mid"]) == ("bad_request", mid), (name, error)
        assert fragment in error["message"], (name, error)

    await editor.send({"type": "ping", "t": "still here"})
    assert (await editor.expect("pong"))["t"] == "still here"
    scene = joined.snapshot["scenes"][0]["id"]
    mid = await editor.patch("scenes", scene, {"heading": "after"})
    change, ack = await editor.frames_until("ack")
    assert change["seq"] == ack["seq"] == joined.snapshot["seq"] + 1, "a hostile frame took a seq"
    assert ack["mid"] == mid
    await editor.send({"type": "flush", "mid": mid + 1})
    await editor.frames_until("saved")

    later = await raw_editor(daemon.url)
    snapshot = await later.join(daemon.project_id)
    assert snapshot["project"]["settings"] == joined.snapshot["project"]["settings"]
    assert snapshot["clips"] == joined.snapshot["clips"]
    stored = show_project(daemon, daemon.project_id)  # reads back: nothing unencodable was saved
    assert stored["project"]["settings"] == before["project"]["settings"]
    assert {row["id"]: row["heading"] for row in stored["scenes"]}[scene] == "after"
    assert stored["clips"] == before["clips"]
    assert "Traceback" not in daemon.stderr[logged:]


# ---- handshakes ---------------------------------------------------------------------------------


def _upgrade(extra: str) -> bytes:
    """A WebSocket upgrade request for the editors' path with ``extra`` header lines."""
    return (
        "GET /v1/editor HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


async def _exchange(daemon: DaemonProcess, request: bytes) -> bytes:
    """Send raw bytes to the daemon's port and return everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(_upgrade(f"X-Padding: {'a' * 9000}\r\n"), b"400", id="9 KB header line"),
        pytest.param(_upgrade("".join(f"X-H{i}: {i}\r\n" for i in range(200))), b"400", id="200 headers"),
        pytest.param(
            b"GET /v1/editor HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"426",
            id="no upgrade",
        ),
    ],
)
async def test_malformed_handshakes_are_refused_quietly(
    shared_daemon: DaemonProcess, raw_editor: RawFactory, request_bytes: bytes, status: bytes
) -> None:
    """A handshake the server cannot take gets an HTTP error status, and no traceback is logged."""
    logged = len(shared_daemon.stderr)
    answer = await _exchange(shared_daemon, request_bytes)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1:2] == [status], answer[:200]
    assert "Traceback" not in shared_daemon.stderr[logged:]

    editor = await raw_editor(shared_daemon.url)
    snapshot = await editor.join(shared_daemon.project_id)
    assert snapshot["project"]["id"] == shared_daemon.project_id


async def test_a_refused_hello_with_a_long_non_ascii_reason_closes_cleanly(
    shared_daemon: DaemonProcess, raw_editor: RawFactory
) -> None:
    """The close reason is cut to the 123 bytes a close frame holds, not to 120 characters of any size."""
    logged = len(shared_daemon.stderr)
    editor = await raw_editor(shared_daemon.url)
    await editor.send({"type": "ümlaut" * 20})
    code, frames = await editor.closed()
    assert code == 4401
    assert [(frame["type"], frame["code"]) for frame in frames] == [("error", "bad_request")]
    assert editor.ws.close_reason
    assert editor.ws.close_reason.startswith("type: unknown frame type 'ümlaut")
    assert len(editor.ws.close_reason.encode()) <= 123
    assert "Traceback" not in shared_daemon.stderr[logged:]


async def test_a_connection_without_a_whole_request_is_closed_after_the_idle_timeout(
    start_daemon: DaemonFactory, raw_editor: RawFactory
) -> None:
    """A connection that sends nothing, or half a request, no longer holds a file for an hour; an editor
    that is quiet for as long is not closed."""
    daemon = start_daemon({"SYNCD_GATEWAY__IDLE_TIMEOUT": "1"})
    editor = await raw_editor(daemon.url)
    await editor.join(daemon.project_id)
    # Each is closed with no answer at all; before, _exchange timed out waiting for the close.
    answers = await asyncio.gather(
        _exchange(daemon, b""), _exchange(daemon, b"GET /v1/editor HTTP/1.1\r\nHost: localhost\r\n")
    )
    assert list(answers) == [b"", b""]
    await editor.send({"type": "ping", "t": 1})
    assert (await editor.expect("pong"))["t"] == 1  # the quiet editor's connection still serves
