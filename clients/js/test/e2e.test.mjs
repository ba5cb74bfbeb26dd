// End to end against a real `syncd run` in local mode: two clients on one project, and a daemon killed
// with SIGKILL and restarted while a client has unacknowledged edits.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { EditorClient, EditorError, HttpError, ProjectStore, SyncdStudio } from "../dist/index.js";
import { Daemon, waitFor } from "./daemon.mjs";
import { prefixProxy } from "./proxy.mjs";

const daemon = new Daemon();
const clients = [];

function client(options = {}) {
  const c = new EditorClient({ url: daemon.url, projectId: daemon.projectId, WebSocket, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  await daemon.start();
});

after(async () => {
  for (const c of clients) c.close();
  await daemon.dispose();
});

test("an edit in one client appears in the other", async () => {
  const a = client();
  const b = client();
  await Promise.all([a.connect(10_000), b.connect(10_000)]);
  await waitFor(() => a.editors.length === 2 && b.editors.length === 2, 5_000, "both editors in presence");
  const scene = a.view.ordered("scenes")[0];
  const seen = new Promise((resolve) => {
    b.on("change", (event) => {
      if (event.id === scene.id) resolve(performance.now());
    });
  });
  const sentAt = performance.now();
  const ack = await a.patch("scenes", scene.id, { heading: "Nightfall" });
  const arrivedAt = await seen;
  assert.equal(b.view.scenes.get(scene.id).heading, "Nightfall");
  assert.ok(arrivedAt - sentAt < 1000, `the change took ${arrivedAt - sentAt} ms`);
  const saved = await b.waitSaved(ack.seq, 10_000);
  assert.ok(saved.seq >= ack.seq);
  a.close();
  b.close();
});

test("the studio's calls edit the live project over the WebSocket, and a store sees it saved", async () => {
  const studio = new SyncdStudio({ url: daemon.url, WebSocket });
  const watcher = client();
  await watcher.connect(10_000);
  const { project, source } = await studio.loadProject(daemon.projectId, { projects: [] });
  assert.equal(source, "syncd");
  assert.equal(project.id, daemon.projectId);
  const [first, second, third] = project.scenes;

  await studio.updateProject(daemon.projectId, { title: "Studio title", aspectRatio: "9:16" });
  const added = { id: "5ce0e000-0000-4000-8000-000000000001", heading: "Coda", duration: 3 };
  await studio.syncScenes(daemon.projectId, [{ ...third, heading: "Opening" }, first, added]);
  const { id: clipId } = await studio.saveClip(daemon.projectId, { sceneId: added.id, prompt: "fade out", provider: "demo" });
  await studio.saveClip(daemon.projectId, { id: clipId, prompt: "fade to black" });
  const clipIds = studio.editor(daemon.projectId).view.ordered("clips").map((clip) => clip.id);
  await studio.reorderClips(daemon.projectId, [clipId]);
  await studio.saveNow(daemon.projectId);

  const store = new ProjectStore({ projectId: daemon.projectId, studio, autoSaveDelay: 50 });
  await store.start();
  const edit = store.updateScene(first.id, { body: "A new body" });
  assert.equal(store.getSnapshot().saveStatus, "unsaved");
  await edit;
  await waitFor(() => store.getSnapshot().saveStatus === "saved", 10_000, "the store's edit to be saved");
  store.stop();

  await waitFor(() => watcher.view.scenes.get(first.id)?.body === "A new body", 5_000, "the watcher to see the store's edit");
  const view = watcher.view;
  assert.equal(view.project.title, "Studio title");
  assert.equal(view.project.aspect_ratio, "9:16");
  assert.deepEqual(
    view.ordered("scenes").map((scene) => [scene.id, scene.scene_index, scene.heading]),
    [
      [third.id, 0, "Opening"],
      [first.id, 1, first.heading],
      [added.id, 2, "Coda"],
    ],
  );
  assert.equal(view.scenes.has(second.id), false);
  assert.deepEqual(view.ordered("clips").map((clip) => clip.id), [clipId, ...clipIds.filter((id) => id !== clipId && view.clips.has(id))]);
  assert.equal(view.clips.get(clipId).prompt, "fade to black");
  assert.equal(view.clips.get(clipId).scene_id, added.id);
  studio.close();
  watcher.close();
});

test("loadProject falls back to the Redux state for a project syncd does not have", async () => {
  const studio = new SyncdStudio({ url: daemon.url, WebSocket });
  const id = "10ca1000-0000-4000-8000-000000000001";
  const loaded = await studio.loadProject(id, { projects: [{ id, title: "Only in Redux", scenes: [], clips: [] }] });
  assert.equal(loaded.source, "local");
  assert.equal(loaded.project.title, "Only in Redux");
  studio.close();
});

test("an edit made on the Redux copy of a project syncd does not have lands once adoptProject saves the project", async (t) => {
  const studio = new SyncdStudio({ url: daemon.url, WebSocket });
  t.after(() => studio.close());
  const id = "10ca1000-0000-4000-8000-0000000000a1";
  const sceneId = "10ca1000-0000-4000-8000-0000000000b1";
  const local = { id, title: "Old project", scenes: [{ id: sceneId, sceneIndex: 0, heading: "Dawn" }], clips: [] };
  const store = new ProjectStore({ projectId: id, studio, fallback: { projects: [local] }, autoSaveDelay: null });
  t.after(() => store.stop());
  await store.start();
  assert.equal(store.getSnapshot().source, "local");
  const edited = store.updateScene(sceneId, { heading: "Dawn, edited on the copy" });
  assert.equal(store.getSnapshot().project.scenes[0].heading, "Dawn, edited on the copy");
  const adoption = await studio.adoptProject(local);
  assert.equal(adoption.adopted, true);
  await Promise.allSettled([edited]);
  const check = client({ projectId: id });
  await check.connect(10_000);
  await waitFor(() => check.view.scenes.get(sceneId)?.heading === "Dawn, edited on the copy", 5_000, "the edit made on the copy");
  assert.equal(store.getSnapshot().source, "syncd");
  assert.equal(store.getSnapshot().project.scenes[0].heading, "Dawn, edited on the copy");
});

test("behind a proxy that serves syncd under a path of the studio's host, the studio's HTTP calls and its connection go through it", async (t) => {
  const proxy = await prefixProxy(daemon.port, "/syncd");
  t.after(() => proxy.close());
  const studio = new SyncdStudio({ url: proxy.url, WebSocket });
  t.after(() => studio.close());
  const made = await studio.createProject({ title: "Behind a proxy" });
  const { source } = await studio.loadProject(made.id);
  await studio.syncScenes(made.id, [{ heading: "Through the proxy" }]);
  await studio.saveNow(made.id);
  assert.equal(source, "syncd");
  const direct = client({ projectId: made.id });
  await direct.connect(10_000);
  assert.equal(direct.view.project.title, "Behind a proxy");
  assert.deepEqual(direct.view.ordered("scenes").map((scene) => scene.heading), ["Through the proxy"]);
});

test("a project id in upper case opens the project", async () => {
  const upper = client({ projectId: daemon.projectId.toUpperCase() });
  const joined = await upper.connect(10_000);
  assert.equal(joined.project_id, daemon.projectId);
  assert.equal(upper.status, "live");
  upper.close();
});

test("a patch far over the frame limit is refused by the client and the connection stays usable", async () => {
  const editor = client();
  await editor.connect(10_000);
  const scene = editor.view.ordered("scenes")[0];
  await assert.rejects(editor.patch("scenes", scene.id, { body: "x".repeat(5_000_000) }), (error) => error instanceof EditorError && error.code === "too_large");
  assert.deepEqual(editor.unacked, []);
  const ack = await editor.patch("scenes", scene.id, { heading: "After the big one" });
  assert.ok(ack.seq > 0);
  assert.equal(editor.status, "live");
  assert.equal(editor.lastClose, null);
  editor.close();
});

test("a client whose id another connection took over (4409) does not take it back", async () => {
  const clientId = "7a4e0000-0000-4000-8000-000000000001";
  const first = client({ clientId });
  const second = client({ clientId });
  await first.connect(10_000);
  await second.connect(10_000);
  await waitFor(() => first.status === "closed", 5_000, "the first client to be closed with 4409");
  assert.equal(first.lastClose.code, 4409);
  await assert.rejects(first.connect(), (error) => error.code === 4409 && /fresh client id/.test(error.message));
  const ack = await second.patch("projects", daemon.projectId, { title: "Second tab" });
  assert.ok(ack.seq > 0);
  assert.equal(second.status, "live");
  first.close();
  second.close();
});

test("a studio whose connection lost its client id to another tab opens the project again with a fresh id", async () => {
  const clientId = "7a4e0000-0000-4000-8000-000000000002";
  const first = new SyncdStudio({ url: daemon.url, WebSocket, clientId });
  const second = new SyncdStudio({ url: daemon.url, WebSocket, clientId }); // a duplicated tab
  try {
    const lost = await first.open(daemon.projectId, 10_000);
    await second.open(daemon.projectId, 10_000);
    await waitFor(() => lost.takenOver, 5_000, "the first tab's connection to be taken over");
    const again = await first.open(daemon.projectId, 10_000);
    assert.notEqual(again, lost);
    assert.notEqual(again.clientId, clientId);
    const ack = await again.patch("projects", daemon.projectId, { title: "First tab again" });
    assert.ok(ack.seq > 0);
  } finally {
    first.close();
    second.close();
  }
});

test("a thousand scenes synced at once stay within the daemon's mutation rate and all arrive", async () => {
  const studio = new SyncdStudio({ url: daemon.url, WebSocket });
  const created = await studio.createProject({ title: "Bulk", aspectRatio: "9:16" });
  const editor = await studio.open(created.id, 10_000);
  const closes = [];
  editor.on("disconnected", (event) => closes.push(event.code));
  const scenes = Array.from({ length: 1000 }, (_, i) => ({ id: `b0000000-0000-4000-8000-${String(i).padStart(12, "0")}`, heading: `S${i}` }));
  try {
    await studio.syncScenes(created.id, scenes);
    assert.deepEqual(closes, [], "no connection was closed (4429)");
    assert.deepEqual(editor.errors, []);
    assert.equal(editor.view.scenes.size, 1000);
    assert.deepEqual(editor.unacked, []);
  } finally {
    studio.close();
  }
});

test("an HTTP refusal of the real daemon carries its error code", async () => {
  const studio = new SyncdStudio({ url: daemon.url, WebSocket });
  await assert.rejects(
    studio.http.request("GET", "/v1/projects/11111111-1111-4111-8111-111111111111"),
    (error) => error instanceof HttpError && error.status === 404 && error.code === "not_found",
  );
  await assert.rejects(
    studio.createProject({ aspectRatio: "2:1" }),
    (error) => error instanceof HttpError && error.status === 400 && error.code === "bad_request",
  );
  studio.close();
});

test("a studio with a token function creates and opens its user's project, asking for the token each time", async () => {
  const user = "0f000000-0000-4000-8000-0000000000aa";
  const token = await daemon.token(user);
  let asked = 0;
  const studio = new SyncdStudio({
    url: daemon.url,
    WebSocket,
    token: async () => {
      asked += 1;
      return token;
    },
  });
  try {
    const created = await studio.createProject({ title: "Mine" });
    assert.equal(created.userId, user);
    const loaded = await studio.loadProject(created.id);
    assert.equal(loaded.source, "syncd");
    assert.equal(loaded.project.title, "Mine");
    assert.equal(asked, 2, "once for the HTTP call, once for the hello");
  } finally {
    studio.close();
  }
});


test("after kill -9 and a restart the client reconnects by itself and every edit is saved exactly once", async () => {
  const writer = client();
  const watcher = client();
  await Promise.all([writer.connect(10_000), watcher.connect(10_000)]);
  const before = writer.view.clips.size;
  const statuses = [];
  writer.on("status", (status) => statuses.push(status));

  // A first batch is acknowledged (journaled) before the kill; the second is sent and not answered.
  const ids = Array.from({ length: 40 }, (_, i) => `7e57c11b-0000-4000-8000-${String(i).padStart(12, "0")}`);
  const first = ids.slice(0, 20).map((id, i) => writer.insert("clips", { id, order_index: 100 + i, prompt: `clip ${i}` }));
  await Promise.all(first);
  const second = ids.slice(20).map((id, i) => writer.insert("clips", { id, order_index: 120 + i, prompt: `clip ${20 + i}` }));
  const title = writer.patch("projects", daemon.projectId, { title: "After the crash" });
  assert.ok(writer.unacked.length >= 21, `unacked before the kill: ${writer.unacked}`);
  const unackedAtKill = writer.unacked.length;
  await daemon.kill();

  await waitFor(() => writer.status === "reconnecting", 5_000, "the client to notice the lost connection");
  await daemon.start();
  const acks = await Promise.all([...second, title]);
  assert.equal(writer.status, "live");
  assert.ok(statuses.includes("reconnecting") && statuses.at(-1) === "live", `statuses ${statuses}`);
  assert.deepEqual(writer.unacked, []);
  assert.deepEqual(writer.errors, [], "no mutation was refused (a second insert of one id would be a conflict)");

  const last = Math.max(...acks.map((ack) => ack.seq));
  const flushed = await writer.flush();
  await writer.waitSaved(Math.max(last, flushed.seq), 10_000);
  await waitFor(() => watcher.view.clips.size === before + 40, 10_000, "the other client to see every clip");
  assert.equal(watcher.view.project.title, "After the crash");
  writer.close();
  watcher.close();

  await daemon.stop();
  const shown = await daemon.show();
  const counts = new Map();
  for (const clip of shown.clips) counts.set(clip.id, (counts.get(clip.id) ?? 0) + 1);
  for (const [i, id] of ids.entries()) {
    assert.equal(counts.get(id), 1, `clip ${id} is saved ${counts.get(id) ?? 0} times`);
    const row = shown.clips.find((clip) => clip.id === id);
    assert.equal(row.prompt, `clip ${i}`);
  }
  assert.equal(shown.clips.length, before + 40);
  assert.equal(shown.project.title, "After the crash");
  assert.ok(unackedAtKill > 0);
});
