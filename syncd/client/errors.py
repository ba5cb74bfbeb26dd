"""The exceptions `syncd.client.EditorClient` raises to its callers."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from syncd.errors import SyncdError
from syncd.wire import CLOSE_ABNORMAL, CLOSE_CODES

__all__ = ["ClientClosed", "EditorError"]


class EditorError(SyncdError):
    """The server answered a request with an ``error`` frame.

    Args:
        code: one of ``syncd.wire.ERROR_CODES`` (``bad_request``, ``conflict``, ...).
        message: the server's explanation.
        mid: the mutation the error is about, or None for errors about the connection.
    """

    def __init__(self, code: str, message: str, mid: int | None) -> None:
        super().__init__(f"{code}: {message}" if mid is None else f"{code} (mid {mid}): {message}")
        self.code = code
        self.message = message
        self.mid = mid


class ClientClosed(ConnectionClosed, SyncdError):
    """The connection to the server is closed, so the awaited answer will not come on it.

    It is also a ``websockets`` ``ConnectionClosed``, for callers that catch that.

    Args:
        code: the WebSocket close code (4401 unauthorized, 1012 daemon restarting, ...; 1006 when the
            connection dropped without a close frame).
        reason: the close reason, possibly empty.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(Close(code, reason) if code != CLOSE_ABNORMAL else None, None)
        self._code = code
        self._reason = reason

    @property
    def code(self) -> int:
        """The WebSocket close code."""
        return self._code

    @property
    def reason(self) -> str:
        """The close reason."""
        return self._reason

    def __str__(self) -> str:
        meaning = CLOSE_CODES.get(self._code)
        text = f"connection closed with code {self._code}"
        if meaning:
            text += f" ({meaning})"
        return f"{text}: {self._reason}" if self._reason else text
