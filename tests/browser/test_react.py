"""The React hook in a real Chromium, typing into a controlled input, with the daemon 100 ms away.

The page is a small React app: ``useProjectSync`` and an ``<input value={scene.heading}>`` whose
``onChange`` calls ``updateScene``, the way a studio screen binds a field to the hook. Between the
page and a real ``syncd run`` sits a TCP relay that holds every chunk 100 ms each way, as a daemon in
another region would. Keystrokes come faster than the round trip; every one must count.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, Page

from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from syncd.servicekey import service_key
from tests.browser.conftest import CLIENT, bundle, page_server
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SCENE = DEMO_SCENES[0]["id"]
DELAY = 0.1
"""Seconds the relay holds each chunk, each way."""
WAIT_MS = 10_000

APP = """
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";
import { EditorClient, SyncdStudio } from "CLIENT/src/index.ts";
import { SyncdProvider, useProjectSync } from "CLIENT/src/react.ts";

const { url, projectId, sceneId } = window.settings;

function Heading() {
  const { project, updateScene } = useProjectSync({ projectId, autoSaveDelay: 300 });
  if (project === null) return h("p", null, "Loading…");
  const scene = project.scenes.find((s) => s.id === sceneId);
  return h("input", {
    id: "heading",
    value: scene.heading ?? "",
    onChange: (event) => { updateScene(sceneId, { heading: event.target.value }); },
  });
}

window.studio = new SyncdStudio({ url });
window.EditorClient = EditorClient;
createRoot(document.getElementById("app")).render(
  h(SyncdProvider, { value: window.studio }, h(Heading)),
);
"""


@pytest.fixture(scope="module")
def app_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The React app above with React and the client, as one ES module."""
    folder = tmp_path_factory.mktemp("react-app")
    entry = folder / "app.js"
    entry.write_text(APP.replace("CLIENT", CLIENT.as_posix()))
    return bundle(entry, folder / "bundle.js")


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, silenced: asyncio.Event
) -> None:
    """Copy one direction, each chunk ``delay`` seconds after it came, in order; once ``silenced``
    is set, chunks vanish and the connection stays up, as on a network path that died without a word."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await chunks.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not silenced.is_set():
                writer.write(chunk)
                await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, chunk))
        chunks.put_nowait((loop.time(), b""))
        await delivering
    finally:
        delivering.cancel()
        writer.close()


class Relay:
    """A TCP relay to the daemon that delays every chunk by DELAY each way; it can drop its links, or
    silence them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.links: list[tuple[asyncio.StreamWriter, asyncio.Event]] = []
        self.address = ""

    async def connect(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        silenced = asyncio.Event()
        self.links += [(client_w, silenced), (server_w, silenced)]
        await asyncio.gather(
            _relay(client_r, server_w, DELAY, silenced),
            _relay(server_r, client_w, DELAY, silenced),
            return_exceptions=True,
        )

    def drop(self) -> None:
        """Cut every link without a close frame, as a lost network does."""
        for writer, _ in self.links:
            writer.transport.abort()
        self.links.clear()

    def silence(self) -> None:
        """Let nothing more through the links open now; new ones work."""
        for _, silenced in self.links:
            silenced.set()
        self.links.clear()


@pytest.fixture
async def relay(daemon: DaemonProcess) -> AsyncIterator[Relay]:
    """The relay, listening; ``far_daemon`` is its address."""
    relay = Relay(daemon.port)
    server = await asyncio.start_server(relay.connect, "127.0.0.1", 0)
    relay.address = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield relay
    server.close()


@pytest.fixture
def far_daemon(relay: Relay) -> str:
    """The daemon's address through the relay."""
    return relay.address


@pytest.fixture
async def app_origin(app_bundle: bytes, far_daemon: str) -> AsyncIterator[str]:
    """A server on 127.0.0.1 for the app's page."""
    settings = json.dumps({"url": far_daemon, "projectId": DEMO_PROJECT_ID, "sceneId": SCENE})
    page = (
        f'<!doctype html><title>studio</title><div id="app"></div>'
        f"<script>window.settings = {settings};</script>"
        f'<script type="module" src="/app.js"></script>'
    )
    files = {"/": (page.encode(), "text/html"), "/app.js": (app_bundle, "text/javascript")}
    async with page_server(files) as origin:
        yield origin


async def live_heading(daemon: DaemonProcess) -> str:
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
        view = (await api.get(f"/v1/projects/{DEMO_PROJECT_ID}")).json()
    return str(next(scene["heading"] for scene in view["scenes"] if scene["id"] == SCENE))


async def heading_arrives(daemon: DaemonProcess, expected: str) -> None:
    """Wait until the daemon's live view has ``expected`` as the first scene's heading."""
    headings: list[str] = []

    async def arrived() -> bool:
        headings.append(await live_heading(daemon))
        return headings[-1] == expected

    await wait_for(arrived, lambda: f"the daemon's heading {headings[-1:]!r} to be {expected!r}", 10.0)


async def open_app(browser: Browser, origin: str) -> tuple[Page, list[str]]:
    """A page of the app once it shows the heading, and the errors the page throws from then on."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(origin)
    await page.wait_for_selector("#heading", timeout=WAIT_MS)
    return page, errors


async def test_typing_faster_than_the_round_trip_keeps_every_keystroke(
    browser: Browser, daemon: DaemonProcess, app_origin: str
) -> None:
    page, errors = await open_app(browser, app_origin)
    await page.click("#heading")
    await page.keyboard.press("End")
    typed = ", seen from the cliff"
    await page.keyboard.type(typed, delay=30)  # a key every 30 ms; the round trip is 200 ms
    expected = f"{DEMO_SCENES[0]['heading']}{typed}"
    await page.wait_for_function("!window.studio.hasUnsentEdits()", timeout=WAIT_MS)
    assert await page.input_value("#heading") == expected
    await heading_arrives(daemon, expected)
    assert errors == []


async def test_typing_through_a_dropped_connection_keeps_every_keystroke(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """Keys typed while the connection is down and coming back show at once and all arrive, in order."""
    page, _ = await open_app(browser, app_origin)
    await page.click("#heading")
    await page.keyboard.press("End")
    await page.keyboard.type(", seen", delay=30)
    relay.drop()
    await page.keyboard.type(" from the cliff", delay=30)
    expected = f"{DEMO_SCENES[0]['heading']}, seen from the cliff"
    assert await page.input_value("#heading") == expected
    await page.wait_for_function("!window.studio.hasUnsentEdits()", timeout=WAIT_MS)
    lost = await page.evaluate(f"window.studio.editor('{DEMO_PROJECT_ID}').lastClose?.code")
    assert lost == 1006, "the connection was dropped and made again"
    await heading_arrives(daemon, expected)


async def test_a_connection_gone_silent_is_made_again_and_the_edit_lands(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """A page cannot see WebSocket pings: the client notices the silence itself and connects again."""
    page, _ = await open_app(browser, app_origin)
    await page.evaluate(
        """async () => {
          const { url, projectId } = window.settings;
          window.probe = new window.EditorClient({ url, projectId, livenessTimeout: 1000 });
          await window.probe.connect();
        }"""
    )
    relay.silence()
    await page.evaluate(
        "() => { window.probe.patch('scenes', window.settings.sceneId, { heading: 'Through the silence' }); }"
    )
    await page.wait_for_function("!window.probe.hasUnsentEdits", timeout=WAIT_MS)
    reason = await page.evaluate("window.probe.lastClose?.reason")
    assert reason == "no answer from syncd for 2 s, not even to a ping"
    await heading_arrives(daemon, "Through the silence")
