"""Connecting to the NATS servers of cluster mode.

``nats-py`` is imported here, when cluster mode starts, and not when the package is imported, so a
daemon without the ``cluster`` extra runs as long as cluster mode is off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from syncd.errors import ClusterError

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

RECONNECT_WAIT = 0.25
"""Seconds between attempts to reach another server after losing one."""

T = TypeVar("T")


async def connect_nats(
    urls: tuple[str, ...] | list[str], name: str, *, connect_timeout: float = 2.0
) -> Client:
    """Connect to any of ``urls``; the client moves to another server by itself when one is lost.

    Args:
        urls: the servers (``nats://host:port``).
        name: the connection's name, as the servers show it (the instance id).
        connect_timeout: seconds one connection attempt may take.

    Raises:
        ClusterError: the ``cluster`` extra is not installed, or no server answered.
    """
    try:
        import nats
        import nats.errors
    except ImportError:
        raise ClusterError("cluster mode needs nats-py: install syncd with the 'cluster' extra") from None

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    async def on_disconnected() -> None:
        if not client.is_closed:
            log.warning("NATS: connection lost, reconnecting")

    async def on_reconnected() -> None:
        log.info("NATS: reconnected to %s", client.connected_url.netloc if client.connected_url else "?")

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
