"""Editors on a bare WebSocket, for tests that send malformed frames or look at frames exactly as sent.

:class:`RawEditor` reads only when the test asks it to (so a test can also leave frames unread, as a
slow editor does); :class:`RecordingEditor` reads everything in the background and keeps it, for tests
that look at the whole stream and the close code afterwards. :class:`RawEditors` opens them for one test
and closes them at its end.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.waiting import wait_for

Frame: TypeAlias = dict[str, Any]
"""One protocol frame as JSON gives it."""


class RawEditor:
    """An editor on a bare WebSocket: sends any text or bytes, reads frames one by one on request.

    Args:
        ws: the open connection.
        client_id: the ``client_id`` it says hello with.
        timeout: seconds any single expected frame may take, unless a call says otherwise.
    """

    def __init__(self, ws: ClientConnection, client_id: str, timeout: float) -> None:
        self.ws = ws
        self.client_id = client_id
        self.timeout = timeout
        self.next_mid = 1
        self.welcome: Frame = {}

    async def send(self, frame: Mapping[str, Any] | str | bytes) -> None:
        """Send a frame: a mapping as JSON, text and bytes as they are."""
        if isinstance(frame, Mapping):
            await self.ws.send(json.dumps(frame))
        else:
            await self.ws.send(frame)

    async def hello(
        self,
        project_id: str,
        *,
        token: str | None = None,
        resume: tuple[str, int] | None = None,
    ) -> None:
        """Send ``hello``."""
        await self.send(
            {
                "type": "hello",
                "protocol": 1,
                "project_id": project_id,
                "client_id": self.client_id,
                "token": token,
                "resume": None if resume is None else {"epoch": resume[0], "seq": resume[1]},
            }
        )

    async def patch(self, table: str, row_id: str, values: Mapping[str, Any], mid: int | None = None) -> int:
        """Send a ``patch`` (with the next mid unless one is given); return its mid."""
        if mid is None:
            mid = self.next_mid
        self.next_mid = max(self.next_mid, mid + 1)
        await self.send({"type": "patch", "mid": mid, "table": table, "id": row_id, "set": dict(values)})
        return mid

    async def recv(self, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """The next frame, whatever its type.

        Raises:
            ConnectionClosed: the daemon closed the connection.
            TimeoutError: no frame came within ``timeout`` seconds.
        """
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            data = await self.ws.recv()
        frame: Frame = json.loads(data)
        return frame

    async def expect(self, kind: str, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """The next frame that is not ``presence``; it must be of type ``kind``."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] != "presence":
                assert frame["type"] == kind, f"expected a {kind} frame, got {frame}"
                return frame

    async def frames_until(self, kind: str, timeout: float | None = None) -> list[Frame]:  # noqa: ASYNC109
        """Every frame up to and including the next one of type ``kind``, ``presence`` left out."""
        frames = []
        while True:
            frame = await self.recv(timeout)
            if frame["type"] != "presence":
                frames.append(frame)
            if frame["type"] == kind:
                return frames

    async def join(self, project_id: str, *, token: str | None = None) -> Frame:
        """Say hello without resume; check ``welcome``, then return the ``snapshot``."""
        await self.hello(project_id, token=token)
        self.welcome = await self.expect("welcome")
        assert self.welcome["project_id"] == project_id
        return await self.expect("snapshot")

    async def closed(self, timeout: float | None = None) -> tuple[int | None, list[Frame]]:  # noqa: ASYNC109
        """Read until the daemon closes the connection; return the close code and the frames read."""
        frames = []
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            try:
                while True:
                    frames.append(await self.recv(timeout))
            except ConnectionClosed:
                pass
        return self.ws.close_code, frames

    async def close(self) -> None:
        """Close the connection from this side."""
        await self.ws.close()


class RecordingEditor(RawEditor):
    """A :class:`RawEditor` whose background reader keeps every frame, in order, and the close code.

    :meth:`recv` (and so :meth:`expect`, :meth:`join`, ...) hands out the recorded frames one by one;
    :attr:`frames` holds all of them whether handed out or not.
    """

    def __init__(self, ws: ClientConnection, client_id: str, timeout: float) -> None:
        super().__init__(ws, client_id, timeout)
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self._unread: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="tests.editor.record")

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame: Frame = json.loads(data)
                self.frames.append(frame)
                self._unread.put_nowait(frame)
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self._unread.put_nowait(None)

    async def recv(self, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """The next recorded frame not handed out yet.

        Raises:
            ConnectionClosed: the daemon closed the connection and every frame was handed out.
            TimeoutError: no frame came within ``timeout`` seconds.
        """
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            frame = await self._unread.get()
        if frame is None:
            self._unread.put_nowait(None)  # the end stays the end for every later call
            # The reader has seen the close, so this raises the connection's own ConnectionClosed.
            await self.ws.recv()
            raise AssertionError("the connection gave a frame after its close")
        return frame

    def of_type(self, kind: str) -> list[Frame]:
        """The frames of one type received so far."""
        return [frame for frame in self.frames if frame["type"] == kind]

    async def wait(
        self,
        predicate: Callable[[RecordingEditor], bool],
        what: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate(self)`` holds; fail after ``timeout`` seconds."""
        await wait_for(
            lambda: predicate(self),
            lambda: f"{what}; frames: {self.frames}",
            self.timeout if timeout is None else timeout,
        )

    async def acked(self, mid: int) -> Frame:
        """Wait for the ack of ``mid``; return it."""
        await self.wait(lambda e: any(f.get("mid") == mid for f in e.of_type("ack")), f"the ack of mid {mid}")
        return next(frame for frame in self.of_type("ack") if frame["mid"] == mid)

    async def close(self) -> None:
        """Close the connection from this side and let the reader finish."""
        await super().close()
        await self._reader


class RawEditors:
    """Opens editors on bare WebSockets for one test and closes them at its end.

    Args:
        timeout: seconds to open a connection, and the editors' default wait for a frame.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._opened: list[RawEditor] = []

    async def open(self, url: str, *, client_id: str | None = None, **connect_args: Any) -> RawEditor:
        """Connect a :class:`RawEditor`; ``connect_args`` go to ``connect`` (e.g. ``max_queue``)."""
        ws = await self._connect(url, connect_args)
        editor = RawEditor(ws, client_id or str(uuid.uuid4()), self.timeout)
        self._opened.append(editor)
        return editor

    async def record(self, url: str) -> RecordingEditor:
        """Connect a :class:`RecordingEditor`."""
        ws = await self._connect(url, {})
        editor = RecordingEditor(ws, str(uuid.uuid4()), self.timeout)
        self._opened.append(editor)
        return editor

    async def _connect(self, url: str, connect_args: Mapping[str, Any]) -> ClientConnection:
        return await connect(
            url, open_timeout=self.timeout, close_timeout=1, compression=None, **connect_args
        )

    async def close(self) -> None:
        """Close every editor opened."""
        for editor in self._opened:
            await editor.close()
