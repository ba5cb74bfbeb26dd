"""The TypeScript client in a page, in a real Chromium against a real ``syncd run``.

A page of its own, on another origin than the daemon, loads the client (bundled from
``clients/js/src``) and opens the seed's demo project (or, for the local copy, a project syncd does
not have).
- Leaving: the page asks first while an edit has not reached syncd. The daemon is paused with SIGSTOP
  so that an edit stays unacknowledged; Chromium is then asked to close the page, running its
  ``beforeunload`` handlers.
- The network coming back (``online``): a client waiting out its reconnect delay dials at once.
- The studio's calls as the editor makes them: the HTTP ones through the browser's own ``fetch`` and
  CORS, and the seed's flow checked in the daemon's view.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from playwright.async_api import Browser, Dialog, Page

from syncd.projects import DEMO_PROJECT_ID, DEMO_SCENES
from syncd.servicekey import service_key
from tests.browser.conftest import CLIENT, bundle, leave, page_server, paused
from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.integration

SCENE = DEMO_SCENES[0]["id"]
WAIT_S = 10.0


@pytest.fixture(scope="module")
def client_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The TypeScript client's sources as one ES module for the page."""
    return bundle(CLIENT / "src" / "index.ts", tmp_path_factory.mktemp("bundle") / "client.js")


def studio_page(daemon: DaemonProcess, options: str) -> str:
    """A page whose ``studio`` has the demo project open; ``editor`` is its connection."""
    return f"""<!doctype html><title>studio</title><body><script type="module">
import {{ SyncdStudio }} from "/client.js";
window.studio = new SyncdStudio({{ url: "{daemon.http}", {options} }});
window.editor = await window.studio.open("{DEMO_PROJECT_ID}");
window.edit = (heading) => window.editor.patch("scenes", "{SCENE}", {{ heading }});
window.ready = true;
</script></body>"""


def editor_page(daemon: DaemonProcess, options: str) -> str:
    """A page whose ``editor`` is an ``EditorClient`` of the demo project, in sync."""
    return f"""<!doctype html><title>editor</title><body><script type="module">
import {{ EditorClient }} from "/client.js";
window.editor = new EditorClient({{ url: "{daemon.http}", projectId: "{DEMO_PROJECT_ID}", {options} }});
await window.editor.connect();
window.ready = true;
</script></body>"""


def local_copy_page(daemon: DaemonProcess, options: str) -> str:
    """A page whose ``store`` shows a project syncd does not have from the studio's Redux state;
    ``edit`` renames its scene there, ``adopt`` saves the copy to syncd."""
    project, scene = str(uuid.uuid4()), str(uuid.uuid4())
    local = {
        "id": project,
        "title": "Only in Redux",
        "scenes": [{"id": scene, "heading": "Old"}],
        "clips": [],
    }
    return f"""<!doctype html><title>local copy</title><body><script type="module">
import {{ ProjectStore, SyncdStudio }} from "/client.js";
const local = {json.dumps(local)};
window.studio = new SyncdStudio({{ url: "{daemon.http}", {options} }});
const fallback = {{ projects: [local] }};
window.store = new ProjectStore({{ studio: window.studio, projectId: local.id, fallback }});
await window.store.start();
window.edit = (heading) => window.store.updateScene("{scene}", {{ heading }}).catch(() => undefined);
window.adopt = () => window.studio.adoptProject(local);
window.ready = window.store.getSnapshot().source === "local";
</script></body>"""


PageMaker = Callable[[DaemonProcess, str], str]
Opener = Callable[[str], Awaitable[tuple[Page, list[Dialog]]]]


@pytest.fixture
async def pages(
    browser: Browser, daemon: DaemonProcess, client_bundle: bytes
) -> AsyncIterator[Callable[[PageMaker], Opener]]:
    """``pages(kind)(options)`` opens a page of that kind, once it is ready; returns it and the
    dialogs it shows (dismissed)."""
    files: dict[str, tuple[bytes, str]] = {"/client.js": (client_bundle, "text/javascript")}
    async with page_server(files) as origin:
        context = await browser.new_context()

        async def open_page(kind: PageMaker, options: str) -> tuple[Page, list[Dialog]]:
            path = f"/page-{len(files)}.html"
            files[path] = (kind(daemon, options).encode(), "text/html")
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

        yield lambda kind: lambda options: open_page(kind, options)
        await context.close()


async def leave_listeners(page: Page) -> int:
    """How many ``beforeunload`` listeners the page's window has (browsers advise one only while
    needed: it costs a page its place in some browsers' back/forward cache)."""
    cdp = await page.context.new_cdp_session(page)
    window = await cdp.send("Runtime.evaluate", {"expression": "window"})
    found = await cdp.send("DOMDebugger.getEventListeners", {"objectId": window["result"]["objectId"]})
    await cdp.detach()
    return sum(1 for listener in found["listeners"] if listener["type"] == "beforeunload")


async def test_leaving_with_an_unacknowledged_edit_asks_first(
    pages: Callable[[PageMaker], Opener], daemon: DaemonProcess
) -> None:
    page, dialogs = await pages(studio_page)("")
    assert await leave_listeners(page) == 0
    with paused(daemon):
        await page.evaluate("() => { window.edit('Typed as the daemon froze'); }")
        assert await page.evaluate("window.studio.hasUnsentEdits()") is True
        assert await leave_listeners(page) == 1
        assert await leave(page) is False
        assert [dialog.type for dialog in dialogs] == ["beforeunload"]
    await page.wait_for_function("!window.studio.hasUnsentEdits()", timeout=WAIT_S * 1000)
    assert await leave_listeners(page) == 0
    assert await leave(page) is True
    assert len(dialogs) == 1


async def test_leaving_once_every_edit_is_acknowledged_does_not_ask(
    pages: Callable[[PageMaker], Opener],
) -> None:
    page, dialogs = await pages(studio_page)("")
    await page.evaluate("() => window.edit('Acknowledged before leaving')")
    assert await leave(page) is True
    assert dialogs == []


async def test_leaving_with_an_edit_made_on_a_local_copy_asks_until_the_copy_is_adopted(
    pages: Callable[[PageMaker], Opener],
) -> None:
    """Edits made on the Redux copy of a project syncd does not have wait in the page for the
    adoption that sends them; leaving first would lose them."""
    page, dialogs = await pages(local_copy_page)("")
    await page.evaluate("() => { window.edit('Typed on the copy'); }")
    assert await page.evaluate("window.studio.hasUnsentEdits()") is True
    assert await leave(page) is False
    assert [dialog.type for dialog in dialogs] == ["beforeunload"]
    await page.evaluate("() => window.adopt()")
    await page.wait_for_function("!window.studio.hasUnsentEdits()", timeout=WAIT_S * 1000)
    assert await leave_listeners(page) == 0
    assert await leave(page) is True
    assert len(dialogs) == 1


async def test_the_studios_http_calls_work_from_a_page(pages: Callable[[PageMaker], Opener]) -> None:
    """Each kind of request (GET, POST, PATCH, DELETE) from another origin, through the browser's own
    ``fetch``, which refuses to run as a method of another object ("Illegal invocation")."""
    page, _ = await pages(studio_page)("")
    seen = await page.evaluate(
        """async () => {
          const studio = window.studio;
          const made = await studio.createProject({ title: "Made in the browser" });
          const titles = (await studio.listProjects()).filter((p) => p.id === made.id).map((p) => p.title);
          const voice = await studio.createVoice({ name: "Narrator" });
          await studio.updateVoice(voice.id, { name: "Narrator, warm" });
          const names = (await studio.listVoices()).filter((v) => v.id === voice.id).map((v) => v.name);
          await studio.deleteVoice(voice.id);
          const left = (await studio.listVoices()).filter((v) => v.id === voice.id).length;
          const again = await studio.deleteVoice(voice.id).then(() => "deleted", (error) => error.status);
          const asked = await studio.requestExport(made.id);
          const exports = (await studio.listExports(made.id)).map((e) => e.id);
          return { titles, names, left, again, exports: exports.length === 1 && exports[0] === asked.id };
        }"""
    )
    assert seen == {
        "titles": ["Made in the browser"],
        "names": ["Narrator, warm"],
        "left": 0,
        "again": 404,
        "exports": True,
    }


async def test_the_seeds_calls_make_a_project_from_a_page(
    pages: Callable[[PageMaker], Opener], daemon: DaemonProcess
) -> None:
    """``createProject``, ``loadProject``, ``syncScenes``, ``saveClip``, ``reorderClips`` and
    ``saveNow``, as the studio's editor calls them, then the daemon's view of the project."""
    page, _ = await pages(studio_page)("")
    made = await page.evaluate(
        """async () => {
          const studio = window.studio;
          const { id } = await studio.createProject({ title: "Storyboard" });
          const { source } = await studio.loadProject(id);
          await studio.syncScenes(id, [{ heading: "Dawn" }, { heading: "Noon" }]);
          const first = await studio.saveClip(id, { prompt: "sunrise", status: "pending" });
          const second = await studio.saveClip(id, { prompt: "sun high", status: "pending" });
          await studio.reorderClips(id, [second.id, first.id]);
          await studio.saveNow(id);
          return { id, source, clips: [second.id, first.id] };
        }"""
    )
    assert made["source"] == "syncd"
    headers = {"Authorization": f"Bearer {service_key(daemon.state_dir)}"}
    async with httpx.AsyncClient(base_url=daemon.http, headers=headers, timeout=10) as api:
        view = (await api.get(f"/v1/projects/{made['id']}")).json()
    assert [scene["heading"] for scene in view["scenes"]] == ["Dawn", "Noon"]
    clips = sorted(view["clips"], key=lambda clip: clip["order_index"])
    assert [clip["id"] for clip in clips] == made["clips"]
    assert [clip["prompt"] for clip in clips] == ["sun high", "sunrise"]


async def test_the_question_can_be_turned_off(
    pages: Callable[[PageMaker], Opener], daemon: DaemonProcess
) -> None:
    page, dialogs = await pages(studio_page)("warnBeforeUnload: false")
    with paused(daemon):
        await page.evaluate("() => { window.edit('Typed as the daemon froze'); }")
        assert await leave(page) is True
    assert dialogs == []


async def test_a_client_waiting_to_reconnect_dials_at_once_when_the_network_is_back(
    pages: Callable[[PageMaker], Opener], daemon: DaemonProcess
) -> None:
    """With a first reconnect delay of 5 to 10 minutes, only the ``online`` event can bring it back soon."""
    page, _ = await pages(editor_page)("reconnectInitial: 600, reconnectMax: 600")
    daemon.kill()
    await page.wait_for_function("window.editor.status === 'reconnecting'", timeout=WAIT_S * 1000)
    await daemon.restart()
    await asyncio.sleep(1.0)  # room for a dial that should not happen: the delay is 300 s or more
    assert await page.evaluate("window.editor.status") == "reconnecting"
    context = page.context
    await context.set_offline(True)
    await context.set_offline(False)
    await page.wait_for_function("window.editor.status === 'live'", timeout=WAIT_S * 1000)
