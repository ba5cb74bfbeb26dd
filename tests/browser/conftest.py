"""Fixtures of the browser tests: a real ``syncd run`` and Debian's Chromium driven by Playwright.

Playwright launches the system's ``/usr/bin/chromium`` (tests/run installs the ``chromium`` package);
it never downloads a browser of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from syncd.projects import DEMO_PROJECT_ID
from syncd.servicekey import service_key
from tests.browser.relay import Relay
from tests.support.daemon import FAST_SAVES, DaemonProcess
from tests.support.waiting import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"
ESBUILD = ROOT / "clients" / "inspector" / "node_modules" / ".bin" / "esbuild"


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


@pytest.fixture
async def relay(daemon: DaemonProcess) -> AsyncIterator[Relay]:
    """The daemon behind a relay that delays every chunk, listening; ``relay.address`` is its address."""
    relay = Relay(daemon.port)
    server = await asyncio.start_server(relay.connect, "127.0.0.1", 0)
    relay.address = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield relay
    server.close()


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


def bundle(entry: Path, out: Path) -> bytes:
    """``entry`` with what it imports (the client's sources, React) as one ES module for a page."""
    if not ESBUILD.exists():
        pytest.fail("clients/inspector has no esbuild: run `npm ci` there (tests/run does)")
    command = [str(ESBUILD), str(entry), "--bundle", "--format=esm", "--target=es2022", f"--outfile={out}"]
    # An entry outside clients/js finds React where the client's tests have it.
    env = {**os.environ, "NODE_PATH": str(CLIENT / "node_modules")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


@asynccontextmanager
async def page_server(files: dict[str, tuple[bytes, str]]) -> AsyncIterator[str]:
    """Serve ``files`` (path: body and content type, added to while it runs) on 127.0.0.1; yields
    the origin. Chromium lets only pages of a local origin reach a daemon on the loopback address."""

    async def serve(request: web.Request) -> web.Response:
        if request.path not in files:
            raise web.HTTPNotFound
        body, kind = files[request.path]
        return web.Response(body=body, content_type=kind)

    app = web.Application()
    app.router.add_get("/{name:.*}", serve)
    async with serving(app) as origin:
        yield origin


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 while the block runs; yields its origin."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def heading_arrives(daemon: DaemonProcess, scene_id: str, expected: str) -> None:
    """Wait until the daemon's live view of the demo project has ``expected`` as the scene's heading."""
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    headings: list[str] = []

    async def arrived() -> bool:
        async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
            view = (await api.get(f"/v1/projects/{DEMO_PROJECT_ID}")).json()
        headings.append(str(next(scene["heading"] for scene in view["scenes"] if scene["id"] == scene_id)))
        return headings[-1] == expected

    await wait_for(arrived, lambda: f"the daemon's heading {headings[-1:]!r} to be {expected!r}", 10.0)
