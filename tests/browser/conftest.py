"""Fixtures of the browser tests: a real ``syncd run`` and Debian's Chromium driven by Playwright.

Playwright launches the system's ``/usr/bin/chromium`` (tests/run installs the ``chromium`` package);
it never downloads a browser of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

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
