// useProjectSync rendered with react-dom/server: the hook reads the store through
// useSyncExternalStore and hands out its calls; effects (opening the project) do not run on a server.

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { createElement } from "react";
import { renderToString } from "react-dom/server";

import { EditorClient, ProjectStore, SyncdStudio } from "../dist/index.js";
import { SyncdProvider, useProjectSync } from "../dist/react.js";
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
