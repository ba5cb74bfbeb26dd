"""Connecting to the NATS servers of cluster mode.

``nats-py`` is imported here, when cluster mode starts, and not when the package is imported, so a
daemon without the ``cluster`` extra runs as long as cluster mode is off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from syncd.errors import ClusterError

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

RECONNECT_WAIT = 0.25
"""Seconds between attempts to reach another server after losing one."""

T = TypeVar("T")

REPEAT_EVERY = 30.0
"""Seconds between two lines for the same NATS error while it keeps coming back."""


def honour_cancellation() -> None:
    """Raise ``CancelledError`` when the running task was told to stop.

    Call it after awaiting a NATS request in a loop that stops by being cancelled. On Python 3.11
    ``asyncio.wait_for``, which nats-py awaits each request with, returns an answer that came in the
    same moment as a cancellation and drops the cancellation: the loop would go on.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class ErrorLog:
    """Which NATS errors get a log line: a new one at once, the same one again once per ``every`` s.

    The client retries an unreachable server four times a second, and reports every failure: a line
    each would bury everything else in the log during an outage.
    """

    every: float = REPEAT_EVERY
    _last: str | None = None
    _logged_at: float = 0.0
    _repeats: int = 0

    def line(self, error: str, now: float) -> str | None:
        """The line to log for ``error`` seen at ``now`` (seconds on a monotonic clock), or None."""
        if error != self._last:
            self._last, self._logged_at, self._repeats = error, now, 0
            return error
        self._repeats += 1
        if now - self._logged_at < self.every:
            return None
        line = f"{error} (again {self._repeats} times in the last {now - self._logged_at:.0f} s)"
        self._logged_at, self._repeats = now, 0
        return line

    def clear(self) -> None:
        """Forget the last error: after a reconnection the next one is news again."""
        self._last = None


async def connect_nats(
    urls: tuple[str, ...] | list[str], name: str, *, connect_timeout: float = 2.0
) -> Client:
    """Connect to any of ``urls``; the client moves to another server by itself when one is lost.

    While no server answers, this keeps trying (every :data:`RECONNECT_WAIT` s): cluster mode cannot
    take a project without NATS. The supervisor cancels it on a stop request.

    Args:
        urls: the servers (``nats://host:port``).
        name: the connection's name, as the servers show it (the instance id).
        connect_timeout: seconds one connection attempt may take.

    Raises:
        ClusterError: the ``cluster`` extra is not installed, or the client refused the settings.
    """
    try:
        import nats
        import nats.errors
    except ImportError:
        raise ClusterError("cluster mode needs nats-py: install syncd with the 'cluster' extra") from None

    errors = ErrorLog()

    async def on_error(exc: Exception) -> None:
        line = errors.line(str(exc), time.monotonic())
        if line is not None:
            log.warning("NATS: %s", line)

    async def on_disconnected() -> None:
        if not client.is_closed:
            log.warning("NATS: connection lost, reconnecting")

    async def on_reconnected() -> None:
        errors.clear()
        log.info("NATS: reconnected to %s", client.connected_url.netloc if client.connected_url else "?")

    log.info("connecting to NATS at %s; start-up waits until one server answers", ", ".join(urls))
    try:
        client = await nats.connect(
            servers=list(urls),
            name=name,
            connect_timeout=int(max(1, connect_timeout)),
            reconnect_time_wait=RECONNECT_WAIT,  # seconds; a float works
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (nats.errors.Error, OSError) as exc:
        raise ClusterError(f"cannot reach any NATS server of {', '.join(urls)}: {exc!r}") from exc
    return client


def is_transient(exc: BaseException) -> bool:
    """Whether a failed NATS request may succeed soon: no answer, no responder, or no leader (503)."""
    import nats.errors
    import nats.js.errors

    if isinstance(exc, nats.js.errors.APIError):
        return exc.code is None or exc.code >= 500
    return isinstance(
        exc,
        nats.errors.TimeoutError
        | nats.errors.NoRespondersError
        | nats.js.errors.NoStreamResponseError
        | nats.errors.ConnectionReconnectingError
        | asyncio.TimeoutError,
    )


async def patiently(request: Callable[[], Awaitable[T]], within: float, pause: float = 0.25) -> T:
    """Run ``request`` until it succeeds or fails for good; transient failures are retried for ``within`` s.

    JetStream answers nothing while its meta or stream leader is being elected (a few seconds after a
    node is lost); a request made then is worth repeating.
    """
    give_up_at = time.monotonic() + within
    while True:
        try:
            return await request()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + pause >= give_up_at:
                raise
            log.info("NATS request failed (%r), trying again", exc)
        await asyncio.sleep(pause)
