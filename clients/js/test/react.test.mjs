// useProjectSync rendered with react-dom/server: the hook reads the store through
// useSyncExternalStore and hands out its calls; effects (opening the project) do not run on a server.
// Then mounted with react-test-renderer, which runs them: StrictMode, and props that change.

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { act, createElement, StrictMode } from "react";
import { renderToString } from "react-dom/server";
import TestRenderer from "react-test-renderer";

import { EditorClient, ProjectStore, SyncdStudio } from "../dist/index.js";
import { SyncdProvider, useFileUrl, useProjectSync } from "../dist/react.js";
import { FakeSocket, join, PROJECT } from "./fake.mjs";

beforeEach(() => FakeSocket.reset());

/** A component that renders what the hook gives it, and hands the result out for checks. */
function probe(options, seen) {
  return function Probe() {
    const sync = useProjectSync(options);
    seen.push(sync);
    return createElement(
      "p",
      null,
      `${sync.isInitialLoad ? "loading" : sync.project?.title} · ${sync.saveStatus} · ${sync.editors.length} editors`,
    );
  };
}

test("the hook renders the store's live project, save status and editors", async () => {
  const editor = new EditorClient({ url: "ws://127.0.0.1:1", projectId: PROJECT, WebSocket: FakeSocket });
  const store = new ProjectStore({ projectId: PROJECT, editor, autoSaveDelay: null });
  const loaded = store.start();
  join();
  FakeSocket.last.receive({ type: "presence", editors: [{ client_id: "a", user_id: null }, { client_id: "b", user_id: null }] });
  await loaded;
  const seen = [];
  const html = renderToString(createElement(probe({ projectId: PROJECT, store }, seen)));
  assert.equal(html, "<p>The Lighthouse · saved · 2 editors</p>");
  const [sync] = seen;
  assert.equal(sync.store, store);
  assert.equal(sync.saveNow, store.saveNow);
  assert.equal(sync.project.scenes.length, 2);

  sync.updateScene("s1", { heading: "Nightfall" });
  const again = renderToString(createElement(probe({ projectId: PROJECT, store }, seen)));
  assert.equal(again, "<p>The Lighthouse · unsaved · 2 editors</p>");
  store.stop();
  editor.close();
});

test("with a studio from the provider the first render is the initial load, and nothing connects on a server", () => {
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  const seen = [];
  const html = renderToString(
    createElement(SyncdProvider, { value: studio }, createElement(probe({ projectId: PROJECT, autoSaveDelay: 1500 }, seen))),
  );
  assert.equal(html, "<p>loading · saved · 0 editors</p>");
  assert.equal(seen[0].isInitialLoad, true);
  assert.equal(seen[0].connection, "new");
  assert.equal(FakeSocket.instances.length, 0);
});

test("without a studio the hook says how to give it one", () => {
  assert.throws(() => renderToString(createElement(probe({ projectId: PROJECT }, []))), /SyncdProvider/);
});

// ---- the hook mounted with its effects (react-test-renderer) ----------------------------------------

// react-test-renderer is deprecated, yet it is the renderer that runs effects without a DOM; its
// notice says so on every create and is left out here.
const consoleError = console.error;
console.error = (...args) => {
  if (typeof args[0] === "string" && args[0].startsWith("react-test-renderer is deprecated")) return;
  consoleError(...args);
};
globalThis.IS_REACT_ACT_ENVIRONMENT = true;

const OTHER = "0f000000-0000-4000-8000-000000000002";

/** Mount `element` with effects; returns the renderer. */
async function mount(element) {
  let renderer;
  await act(async () => {
    renderer = TestRenderer.create(element);
  });
  return renderer;
}

/** A component that hands out what the hook gives it; its props are the hook's options. */
function Editor({ seen, ...options }) {
  seen.push(useProjectSync(options));
  return null;
}

function editorOf(studio, seen, options) {
  return createElement(SyncdProvider, { value: studio }, createElement(Editor, { seen, ...options }));
}

/** Let the microtasks run (the studio closes a released connection after them). */
const settle = () => act(() => new Promise((done) => setImmediate(done)));

test("under StrictMode (mount, unmount, mount) the hook opens one connection and shows no error", async (t) => {
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  t.after(() => studio.close()); // a failed check must not leave it reconnecting
  const seen = [];
  const renderer = await mount(createElement(StrictMode, null, editorOf(studio, seen, { projectId: PROJECT, autoSaveDelay: null })));
  assert.equal(FakeSocket.instances.length, 1, "one socket");
  await act(async () => join());
  await settle();
  const sync = seen.at(-1);
  assert.equal(sync.isInitialLoad, false);
  assert.equal(sync.error, null);
  assert.equal(sync.connection, "live");
  assert.equal(FakeSocket.last.closedWith, null);
  await act(async () => renderer.unmount());
  await settle();
  assert.equal(FakeSocket.last.closedWith.code, 1000, "the last user closes the connection");
});

test("a new autoSaveDelay keeps the store and its connection: an edit in flight is answered, not failed", async (t) => {
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  t.after(() => studio.close()); // a failed check must not leave it reconnecting
  const seen = [];
  const renderer = await mount(editorOf(studio, seen, { projectId: PROJECT, autoSaveDelay: null }));
  await act(async () => join());
  const store = seen.at(-1).store;
  const socket = FakeSocket.last;
  socket.take();
  const edit = seen.at(-1).updateScene("s1", { heading: "Nightfall" });
  await act(async () => renderer.update(editorOf(studio, seen, { projectId: PROJECT, autoSaveDelay: 500 })));
  await settle();
  assert.equal(seen.at(-1).store, store, "the same store");
  assert.equal(FakeSocket.instances.length, 1);
  assert.equal(socket.closedWith, null);
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Nightfall" } }]);
  await act(async () => socket.receive({ type: "ack", mid: 1, seq: 1 }));
  assert.deepEqual(await edit, { mid: 1, seq: 1 });
  assert.equal(seen.at(-1).error, null);
  await act(async () => renderer.unmount());
});

test("a store re-created for another project leaves the old connection open until its edit in flight is answered", async (t) => {
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  t.after(() => studio.close()); // a failed check must not leave it reconnecting
  const seen = [];
  const renderer = await mount(editorOf(studio, seen, { projectId: PROJECT, autoSaveDelay: null }));
  await act(async () => join());
  const first = FakeSocket.last;
  first.take();
  const edit = seen.at(-1).updateScene("s1", { heading: "Nightfall" });
  await act(async () => renderer.update(editorOf(studio, seen, { projectId: OTHER, autoSaveDelay: null })));
  await settle();
  assert.equal(FakeSocket.instances.length, 2, "the other project has its own connection");
  assert.equal(first.closedWith, null, "not closed while the edit waits for its answer");
  await act(async () => first.receive({ type: "ack", mid: 1, seq: 1 }));
  assert.deepEqual(await edit, { mid: 1, seq: 1 });
  await settle();
  assert.equal(first.closedWith.code, 1000, "closed once the edit is answered");
  assert.equal(seen.at(-1).error, null);
  await act(async () => renderer.unmount());
});

// ---- useFileUrl --------------------------------------------------------------------------------------

test("useFileUrl shows the fresh URL of the file it is given now, never one asked for an earlier file", async () => {
  const answers = new Map();
  const fetch = (url) =>
    new Promise((resolve) => {
      const file = new URL(url).pathname.split("/").at(-1);
      answers.set(file, (status) => resolve(new Response(JSON.stringify(status === 200 ? { signed_url: `fresh:${file}` } : { error: "not_found", message: "gone" }), { status })));
    });
  const studio = new SyncdStudio({ url: "http://127.0.0.1:1", WebSocket: FakeSocket, fetch });
  const stored = (file) => `http://127.0.0.1:1/storage/v1/object/sign/clips/projects/p/clips/${file}?token=old`;
  const shown = [];
  function Clip({ url }) {
    shown.push(useFileUrl(url));
    return null;
  }
  const clip = (url) => createElement(SyncdProvider, { value: studio }, createElement(Clip, { url }));
  const renderer = await mount(clip(stored("a.mp4")));
  assert.equal(shown.at(-1), null, "nothing while it is asked for");
  await act(async () => renderer.update(clip(stored("b.mp4"))));
  await act(async () => answers.get("a.mp4")(200));
  assert.equal(shown.at(-1), null, "the answer for a.mp4 is not shown for b.mp4");
  await act(async () => answers.get("b.mp4")(200));
  assert.equal(shown.at(-1), "fresh:b.mp4");
  await act(async () => renderer.update(clip("https://cdn.example.com/c.mp4")));
  assert.equal(shown.at(-1), "https://cdn.example.com/c.mp4", "a URL that is not a signed Storage URL as it is");
  await act(async () => renderer.update(clip(stored("gone.mp4"))));
  await act(async () => answers.get("gone.mp4")(404));
  assert.equal(shown.at(-1), null, "a file syncd does not have shows nothing");
  await act(async () => renderer.unmount());
});

test("useFileUrl gives a page left open a new URL before the one it shows expires", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  let signed = 0;
  const fetch = async () => new Response(JSON.stringify({ signed_url: `fresh-${(signed += 1)}` }), { status: 200 });
  const studio = new SyncdStudio({ url: "http://127.0.0.1:1", WebSocket: FakeSocket, fetch });
  const shown = [];
  function Clip() {
    shown.push(useFileUrl("http://127.0.0.1:1/storage/v1/object/sign/clips/projects/p/clips/a.mp4?token=old"));
    return null;
  }
  const renderer = await mount(createElement(SyncdProvider, { value: studio }, createElement(Clip)));
  await act(async () => {}); // the answer
  assert.equal(shown.at(-1), "fresh-1");
  await act(async () => t.mock.timers.tick(12 * 3600 * 1000 - 1));
  assert.equal(shown.at(-1), "fresh-1");
  await act(async () => t.mock.timers.tick(1));
  await act(async () => {});
  assert.equal(shown.at(-1), "fresh-2", "renewed at half the URL's life");
  assert.equal(shown.includes(null, 1), false, "the old URL stays shown while the new one is asked for");
  await act(async () => renderer.unmount());
});
