"""Leaving a studio page in a real browser: asked first while an edit has not reached syncd.

A page on a test origin loads the TypeScript client (bundled from ``clients/js/src``) and opens the
seed's demo project through ``SyncdStudio`` against a real ``syncd run``. The daemon is paused with
SIGSTOP so that an edit stays unacknowledged; Chromium is then asked to close the page, running its
``beforeunload`` handlers.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Dialog, Page

from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ESBUILD = ROOT / "clients" / "inspector" / "node_modules" / ".bin" / "esbuild"
SCENE = DEMO_SCENES[0]["id"]
WAIT_S = 10.0


@pytest.fixture(scope="module")
def client_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The TypeScript client's sources as one ES module for the page."""
    if not ESBUILD.exists():
        pytest.fail("clients/inspector has no esbuild: run `npm ci` there (tests/run does)")
    out = tmp_path_factory.mktemp("bundle") / "client.js"
    entry = ROOT / "clients" / "js" / "src" / "index.ts"
    command = [str(ESBUILD), str(entry), "--bundle", "--format=esm", "--target=es2022", f"--outfile={out}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def studio_page(daemon: DaemonProcess, options: str) -> str:
    return f"""<!doctype html><title>studio</title><body><script type="module">
import {{ SyncdStudio }} from "/client.js";
window.studio = new SyncdStudio({{ url: "{daemon.http}", {options} }});
await window.studio.open("{DEMO_PROJECT_ID}");
const editor = window.studio.editor("{DEMO_PROJECT_ID}");
window.edit = (heading) => editor.patch("scenes", "{SCENE}", {{ heading }});
window.ready = true;
</script></body>"""


@pytest.fixture
async def open_studio(
    browser: Browser, daemon: DaemonProcess, client_bundle: bytes
) -> AsyncIterator[Callable[[str], Awaitable[tuple[Page, list[Dialog]]]]]:
    """Opens a page whose ``studio`` has the demo project live; returns it and the dialogs it shows.

    The pages come from a server of their own on 127.0.0.1: Chromium lets only pages of a local
    origin reach a daemon on the loopback address.
    """
    files: dict[str, tuple[bytes, str]] = {"/client.js": (client_bundle, "text/javascript")}

    async def serve(request: web.Request) -> web.Response:
        body, kind = files[request.path]
        return web.Response(body=body, content_type=kind)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    context = await browser.new_context()

    async def open_page(options: str) -> tuple[Page, list[Dialog]]:
        path = f"/studio-{len(files)}.html"
        files[path] = (studio_page(daemon, options).encode(), "text/html")
        page = await context.new_page()
        dialogs: list[Dialog] = []

        async def dismiss(dialog: Dialog) -> None:
            dialogs.append(dialog)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        await page.goto(f"{origin}{path}")
        await page.wait_for_function("window.ready === true", timeout=WAIT_S * 1000)
        await page.mouse.click(5, 5)  # Chromium asks on leaving only a page the user has touched
        return page, dialogs

    yield open_page
    await context.close()
    await runner.cleanup()


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


async def test_leaving_with_an_unacknowledged_edit_asks_first(
    open_studio: Callable[[str], Awaitable[tuple[Page, list[Dialog]]]], daemon: DaemonProcess
) -> None:
    page, dialogs = await open_studio("")
    with paused(daemon):
        await page.evaluate("() => { window.edit('Typed as the daemon froze'); }")
        assert await page.evaluate("window.studio.hasUnsentEdits()") is True
        assert await leave(page) is False
        assert [dialog.type for dialog in dialogs] == ["beforeunload"]
    await page.wait_for_function("!window.studio.hasUnsentEdits()", timeout=WAIT_S * 1000)
    assert await leave(page) is True
    assert len(dialogs) == 1


async def test_leaving_once_every_edit_is_acknowledged_does_not_ask(
    open_studio: Callable[[str], Awaitable[tuple[Page, list[Dialog]]]],
) -> None:
    page, dialogs = await open_studio("")
    await page.evaluate("() => window.edit('Acknowledged before leaving')")
    assert await leave(page) is True
    assert dialogs == []


async def test_the_question_can_be_turned_off(
    open_studio: Callable[[str], Awaitable[tuple[Page, list[Dialog]]]], daemon: DaemonProcess
) -> None:
    page, dialogs = await open_studio("warnBeforeUnload: false")
    with paused(daemon):
        await page.evaluate("() => { window.edit('Typed as the daemon froze'); }")
        assert await leave(page) is True
    assert dialogs == []
