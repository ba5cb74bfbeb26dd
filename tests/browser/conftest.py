"""Fixtures of the browser tests: a real ``syncd run`` and Debian's Chromium driven by Playwright.

Playwright launches the system's ``/usr/bin/chromium`` (tests/run installs the ``chromium`` package);
it never downloads a browser of its own.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support.daemon import FAST_SAVES, DaemonProcess

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """``syncd run`` in local mode with fast saves; its store starts with the seed's demo project."""
    process = DaemonProcess(tmp_path / "state", env=FAST_SAVES)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium (Debian's package)."""
    executable = shutil.which(str(CHROMIUM)) or shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium package; tests/run installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@contextmanager
def paused(daemon: DaemonProcess) -> Iterator[None]:
    """The daemon stopped (SIGSTOP): the connection stays up, nothing is answered."""
    daemon.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        daemon.signal(signal.SIGCONT)


async def leave(page: Page) -> bool:
    """Ask the browser to close the page, running ``beforeunload``; return whether it closed."""
    closed = asyncio.get_running_loop().create_future()
    page.once("close", lambda _: None if closed.done() else closed.set_result(None))
    await page.close(run_before_unload=True)
    try:
        async with asyncio.timeout(2.0):
            await closed
    except TimeoutError:
        return False
    return True
