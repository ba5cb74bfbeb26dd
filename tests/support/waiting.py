"""Wait for a condition that no socket announces (a row in a store, a line in a log), with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest

POLL_INTERVAL = 0.02
"""Seconds between two looks at a plain condition (a file, a list in memory)."""

ASYNC_POLL_INTERVAL = 0.05
"""Seconds between two looks at an async condition, which costs a query or a request each time."""


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Poll ``predicate`` until it holds; fail the test once ``timeout`` seconds have passed.

    Args:
        predicate: the condition, plain or async (one that queries a database or an endpoint). One look
            at an async condition may take ``timeout`` seconds at most: one that hangs fails the test
            instead of blocking it.
        what: what the test waits for, for the failure message; a callable is asked only on failure,
            so the message shows the state at the deadline (e.g. the log as it was then).
        timeout: seconds before the test fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        look = predicate()
        if inspect.isawaitable(look):
            interval = ASYNC_POLL_INTERVAL
            try:
                async with asyncio.timeout(timeout):
                    holds = await look
            except TimeoutError:
                break
        else:
            interval, holds = POLL_INTERVAL, look
        if holds:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


async def ends_cancelled(task: asyncio.Task[None], within: float = 5.0) -> bool:
    """Cancel ``task``; whether it then ended cancelled within ``within`` seconds (a bound on a hang,
    not a claim on the time). A task still running afterwards is cancelled again, and left."""
    task.cancel()
    try:
        await asyncio.wait({task}, timeout=within)
        return task.cancelled()
    finally:
        task.cancel()
