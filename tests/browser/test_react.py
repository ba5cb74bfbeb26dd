"""The React hook in a real Chromium, typing into a controlled input, with the daemon 100 ms away.

The page is a small React app: ``useProjectSync`` and an ``<input value={scene.heading}>`` whose
``onChange`` calls ``updateScene``, the way a studio screen binds a field to the hook. Between the
page and a real ``syncd run`` sits a TCP relay that holds every chunk 100 ms each way, as a daemon in
another region would. Keystrokes come faster than the round trip; every one must count. The same
page's ``window.studio`` also runs the studio calls that need a browser (``localStorage``, Web
Locks: an adoption cut short, the edits of a tab that crashed), and a ``<video>`` shows a stored clip
through ``useFileUrl``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from syncd.servicekey import service_key
from syncd.storage import LocalFiles
from tests.browser.conftest import CLIENT, bundle, heading_arrives, page_server
from tests.browser.relay import Relay
from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.integration

SCENE = DEMO_SCENES[0]["id"]
WAIT_MS = 10_000

APP = """
import { createElement as h, useState } from "react";
import { createRoot } from "react-dom/client";
import { EditorClient, SyncdStudio } from "CLIENT/src/index.ts";
import { SyncdProvider, useFileUrl, useProjectSync } from "CLIENT/src/react.ts";

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

function Clip() {
  const [stored, setStored] = useState(null);
  window.showClip = setStored;
  return h("video", { id: "clip", src: useFileUrl(stored) ?? undefined });
}

window.studio = new SyncdStudio({ url });
window.EditorClient = EditorClient;
createRoot(document.getElementById("app")).render(
  h(SyncdProvider, { value: window.studio }, h(Heading), h(Clip)),
);
"""


@pytest.fixture(scope="module")
def app_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The React app above with React and the client, as one ES module."""
    folder = tmp_path_factory.mktemp("react-app")
    entry = folder / "app.js"
    entry.write_text(APP.replace("CLIENT", CLIENT.as_posix()))
    return bundle(entry, folder / "bundle.js")


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


async def open_app(browser: Browser, origin: str) -> tuple[Page, list[str]]:
    """A page of the app once it shows the heading, and the errors the page throws from then on."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(origin)
    await page.wait_for_selector("#heading", timeout=WAIT_MS)
    return page, errors


async def open_probe(browser: Browser, origin: str, liveness_ms: int = 1000) -> Page:
    """A page of the app with a second client of its own, ``window.probe``, in sync; it counts
    ``liveness_ms`` of silence, then as long again after its ping, as a lost connection."""
    page, _ = await open_app(browser, origin)
    await page.evaluate(
        """async (livenessTimeout) => {
          const { url, projectId } = window.settings;
          window.probe = new window.EditorClient({ url, projectId, livenessTimeout });
          await window.probe.connect();
        }""",
        liveness_ms,
    )
    return page


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
    await heading_arrives(daemon, SCENE, expected)
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
    await heading_arrives(daemon, SCENE, expected)


async def test_a_connection_gone_silent_is_made_again_and_the_edit_lands(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """A page cannot see WebSocket pings: the client notices the silence itself and connects again."""
    page = await open_probe(browser, app_origin)
    relay.silence()
    await page.evaluate(
        "() => { window.probe.patch('scenes', window.settings.sceneId, { heading: 'Through the silence' }); }"
    )
    await page.wait_for_function("!window.probe.hasUnsentEdits", timeout=WAIT_MS)
    reason = await page.evaluate("window.probe.lastClose?.reason")
    assert reason == "no answer from syncd for 2 s, not even to a ping"
    await heading_arrives(daemon, SCENE, "Through the silence")


async def test_a_connection_gone_silent_with_nothing_to_send_is_noticed_and_the_view_catches_up(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """A page that only reads (a laptop woken up, a VPN that came back with other routes) must not go
    on showing a view the daemon stopped updating, under a status that says live."""
    page = await open_probe(browser, app_origin)
    relay.silence()
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
        changed = await api.patch(f"/v1/projects/{DEMO_PROJECT_ID}", json={"title": "Renamed elsewhere"})
    assert changed.status_code == 200, changed.text
    await page.wait_for_function(
        "window.probe.view.project.title === 'Renamed elsewhere'",
        timeout=WAIT_MS,
    )
    reason = await page.evaluate("window.probe.lastClose?.reason")
    assert reason == "no answer from syncd for 2 s, not even to a ping"


async def test_a_page_that_comes_back_checks_its_connection_at_once(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """A laptop woken up: the connection died while it slept, and the page's clock may not have
    counted the sleep, so the silence it measures is short. Shown again, the page pings at once and
    gives the connection up after 5 s without an answer, not after two liveness timeouts (here 60 s)."""
    page = await open_probe(browser, app_origin, liveness_ms=60_000)
    relay.silence()
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
        changed = await api.patch(f"/v1/projects/{DEMO_PROJECT_ID}", json={"title": "Renamed while asleep"})
    assert changed.status_code == 200, changed.text
    await page.evaluate("document.dispatchEvent(new Event('visibilitychange', { bubbles: true }))")
    await page.wait_for_function(
        "window.probe.view.project.title === 'Renamed while asleep'", timeout=WAIT_MS
    )
    reason = await page.evaluate("window.probe.lastClose?.reason")
    assert reason == "no answer from syncd within 5 s of a ping sent as the page came back"


async def test_an_adoption_cut_short_is_finished_from_the_browsers_local_storage(
    browser: Browser, daemon: DaemonProcess, app_origin: str
) -> None:
    """The first adoption saved the project and one scene before its tab closed; the browser's
    localStorage still notes it, so the next ``adoptProject`` saves the scene syncd lacks."""
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    project_id, one, two = (str(uuid.uuid4()) for _ in range(3))
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
        made = await api.post("/v1/projects", json={"id": project_id, "title": "Half adopted"})
        assert made.status_code == 201, made.text
        put = await api.put(
            f"/v1/projects/{project_id}/scenes", json={"scenes": [{"id": one, "heading": "One"}]}
        )
        assert put.status_code == 200, put.text
    page, errors = await open_app(browser, app_origin)
    adoption = await page.evaluate(
        """async ([id, one, two]) => {
          const mark = `syncd.adopting.${id}`;
          localStorage.setItem(mark, new Date().toISOString());
          const scenes = [{ id: one, heading: "One" }, { id: two, heading: "Two" }];
          const local = { id, title: "Half", scenes, clips: [] };
          const { adopted, project } = await window.studio.adoptProject(local);
          const headings = project.scenes.map((s) => s.heading);
          return { adopted, headings, left: localStorage.getItem(mark) };
        }""",
        [project_id, one, two],
    )
    assert adoption == {"adopted": True, "headings": ["One", "Two"], "left": None}
    assert errors == []


async def test_a_clip_whose_stored_url_has_expired_plays_from_a_fresh_one(
    browser: Browser, daemon: DaemonProcess, app_origin: str, tmp_path: Path
) -> None:
    """The renderer stored the clip's signed URL a week ago; ``useFileUrl`` shows it from a new one."""
    key = service_key(daemon.state_dir)
    path = f"projects/{DEMO_PROJECT_ID}/clips/{SCENE}-pika-1.mp4"
    async with httpx.AsyncClient(base_url=daemon.http, timeout=10) as api:
        put = await api.put(
            f"/v1/storage/clips/{path}",
            content=b"\x00\x00\x00\x18ftypmp42",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "video/mp4"},
        )
        assert put.status_code == 201, put.text
    week_old = LocalFiles(tmp_path, key, daemon.http).sign("clips", path, int(time.time()) - 3600)
    stored = f"{put.json()['url'].split('?')[0]}?token={week_old}"
    page, errors = await open_app(browser, app_origin)
    fetched = "(url) => fetch(url).then(async (r) => [r.status, [...new Uint8Array(await r.arrayBuffer())]])"
    assert (await page.evaluate(fetched, stored))[0] == 403
    await page.evaluate("(url) => window.showClip(url)", stored)
    await page.wait_for_function("document.getElementById('clip').src !== ''", timeout=WAIT_MS)
    src = await page.evaluate("document.getElementById('clip').src")
    assert src != stored
    assert await page.evaluate(fetched, src) == [200, list(b"\x00\x00\x00\x18ftypmp42")]
    assert errors == []


async def test_edits_of_a_tab_that_crashed_are_sent_by_the_next_page_of_the_project(
    browser: Browser, daemon: DaemonProcess, app_origin: str, relay: Relay
) -> None:
    """The keys typed while the link was silent never reached syncd, and the tab then ended without
    running any handler, as a crash does; the next page of the same browser sends them."""
    context = await browser.new_context()
    crashed = await context.new_page()
    await crashed.goto(app_origin)
    await crashed.wait_for_selector("#heading", timeout=WAIT_MS)
    relay.silence()
    await crashed.click("#heading")
    await crashed.keyboard.press("End")
    await crashed.keyboard.type(" at dawn", delay=30)
    kept = "Object.keys(localStorage).filter((key) => key.startsWith('syncd.unsent.'))"
    assert len(await crashed.evaluate(kept)) == 1
    await crashed.close()  # no beforeunload, no unload: the page is simply gone
    reopened = await context.new_page()
    await reopened.goto(app_origin)
    expected = f"{DEMO_SCENES[0]['heading']} at dawn"
    await heading_arrives(daemon, SCENE, expected)
    await reopened.wait_for_function(f"{kept}.length === 0", timeout=WAIT_MS)
    await reopened.wait_for_function(
        f"document.getElementById('heading')?.value === {json.dumps(expected)}", timeout=WAIT_MS
    )
    await context.close()
