// ProjectStore without React: the snapshot, the save status, auto-save and the fallback.

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ClientClosed, EditorClient, ProjectStore, SyncdStudio, TimeoutError } from "../dist/index.js";
import { FakeSocket, join, PROJECT, snapshot, welcome } from "./fake.mjs";

let now = 0;

function setup(t, storeOptions = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  now = 0;
  const editor = new EditorClient({ url: "ws://127.0.0.1:1", projectId: PROJECT, WebSocket: FakeSocket, jitter: () => 0, clock: () => now });
  const store = new ProjectStore({ projectId: PROJECT, editor, ...storeOptions });
  const notified = [];
  store.subscribe(() => notified.push(store.getSnapshot()));
  return { editor, store, notified };
}

beforeEach(() => FakeSocket.reset());

/** Start `store` and bring its connection in sync (`extra`: rows for the snapshot); returns the socket. */
async function startLive(store, extra = {}) {
  const loaded = store.start();
  const socket = FakeSocket.last;
  socket.open();
  socket.receive(welcome());
  socket.receive(snapshot(0, "e1", extra));
  await loaded;
  return socket;
}

test("the snapshot shows the initial load, then the live project in camelCase; it is stable while nothing changes", async (t) => {
  const { editor, store } = setup(t);
  assert.equal(store.getSnapshot().isInitialLoad, true);
  assert.equal(store.getSnapshot().project, null);
  await startLive(store);
  const snap = store.getSnapshot();
  assert.equal(snap.isInitialLoad, false);
  assert.equal(snap.source, "syncd");
  assert.equal(snap.connection, "live");
  assert.equal(snap.project.aspectRatio, "16:9");
  assert.deepEqual(snap.project.scenes.map((s) => s.sceneIndex), [0, 1]);
  assert.equal(snap.saveStatus, "saved");
  assert.equal(store.getSnapshot(), snap, "the same object while nothing changed");
  FakeSocket.last.receive({ type: "pong", t: "nobody asked" });
  assert.equal(store.getSnapshot(), snap);

  FakeSocket.last.receive({ type: "change", seq: 1, table: "scenes", op: "update", id: "s2", set: { heading: "Lamp" }, origin: "db", client_id: null, mid: null });
  const next = store.getSnapshot();
  assert.notEqual(next, snap);
  assert.equal(next.project.scenes[1].heading, "Lamp");
  assert.equal(next.project.scenes[0], snap.project.scenes[0], "an unchanged row keeps its object");
  assert.equal(next.project.clips[0], snap.project.clips[0]);
  store.stop();
  editor.close();
});

test("an edit is unsaved until saved; after autoSaveDelay of quiet the store asks for a save", async (t) => {
  const { editor, store, notified } = setup(t, { autoSaveDelay: 1500 });
  const socket = await startLive(store);
  socket.take();
  const edit = store.updateScene("s1", { heading: "Nightfall", sceneIndex: 0 });
  assert.equal(store.getSnapshot().saveStatus, "unsaved");
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Nightfall", scene_index: 0 } }]);
  socket.receive({ type: "change", seq: 1, table: "scenes", op: "update", id: "s1", set: { heading: "Nightfall" }, origin: "editor", client_id: editor.clientId, mid: 1 });
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  await edit;
  assert.equal(store.getSnapshot().saveStatus, "unsaved", "acknowledged is not saved");

  t.mock.timers.tick(1499);
  assert.deepEqual(socket.take(), [], "no save before the delay");
  t.mock.timers.tick(1);
  assert.deepEqual(socket.take(), [{ type: "flush", mid: 2 }]);
  assert.equal(store.getSnapshot().saveStatus, "saving");
  socket.receive({ type: "ack", mid: 2, seq: 1 });
  await new Promise((done) => setImmediate(done));
  socket.receive({ type: "saved", seq: 1, at: "2026-12-01T10:00:00.000Z" });
  await new Promise((done) => setImmediate(done));
  const snap = store.getSnapshot();
  assert.equal(snap.saveStatus, "saved");
  assert.equal(snap.lastSavedAt, "2026-12-01T10:00:00.000Z");
  assert.ok(notified.length >= 4, `listeners were told (${notified.length} times)`);
  store.stop();
  editor.close();
});

test("saveNow saves at once and resolves when the database has it; a refused save shows as error", async (t) => {
  const { editor, store } = setup(t, { autoSaveDelay: null });
  const socket = await startLive(store);
  socket.take();
  store.updateProject({ title: "Renamed" });
  socket.take();
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  t.mock.timers.tick(60_000);
  assert.deepEqual(socket.take(), [], "with autoSaveDelay null the daemon's debounce saves");
  const saved = store.saveNow();
  assert.deepEqual(socket.take(), [{ type: "flush", mid: 2 }]);
  socket.receive({ type: "ack", mid: 2, seq: 1 });
  socket.receive({ type: "error", mid: null, code: "unavailable", message: "the database refused the save" });
  await new Promise((done) => setImmediate(done));
  assert.equal(store.getSnapshot().saveStatus, "error");
  assert.equal(store.getSnapshot().error.code, "unavailable");
  socket.receive({ type: "saved", seq: 1, at: "2026-12-01T10:00:01.000Z" });
  await saved;
  assert.equal(store.getSnapshot().saveStatus, "saved");
  assert.equal(store.getSnapshot().error, null, "the failed save is over");
  store.stop();
  editor.close();
});

test("edits that wait for room on the daemon's disk show as error until a save leaves none waiting", async (t) => {
  const { editor, store } = setup(t, { autoSaveDelay: null });
  const socket = await startLive(store);
  socket.take();
  store.updateProject({ title: "Typed before" });
  socket.take();
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  store.updateProject({ title: "Typed on a full disk" });
  assert.equal(socket.take().length, 1);
  const full = "the daemon's disk is full (0.0 MiB free, under the 16 MiB it keeps for its journal)";
  socket.receive({ type: "error", mid: null, code: "unavailable", message: `${full}: your edits wait in this editor until there is room` });
  assert.equal(store.getSnapshot().saveStatus, "error");
  socket.receive({ type: "saved", seq: 1, at: "2026-12-01T10:00:00.000Z" }); // the edit before, saved meanwhile
  assert.equal(store.getSnapshot().savedSeq, 1);
  assert.equal(store.getSnapshot().saveStatus, "error");
  assert.equal(store.getSnapshot().error.code, "unavailable");
  socket.receive({ type: "ack", mid: 2, seq: 2 }); // there is room: the edit went on
  socket.receive({ type: "saved", seq: 2, at: "2026-12-01T10:00:02.000Z" });
  assert.equal(store.getSnapshot().saveStatus, "saved");
  assert.equal(store.getSnapshot().error, null);
  store.stop();
  editor.close();
});

test("the editors present come from presence", async (t) => {
  const { editor, store } = setup(t);
  await startLive(store);
  FakeSocket.last.receive({ type: "presence", editors: [{ client_id: "a", user_id: null }, { client_id: "b", user_id: "u1" }] });
  assert.deepEqual(store.getSnapshot().editors, [
    { clientId: "a", userId: null },
    { clientId: "b", userId: "u1" },
  ]);
  store.stop();
  editor.close();
});

test("a project syncd does not have is shown from the fallback state", async (t) => {
  const { editor, store } = setup(t, { fallback: { projects: [{ id: PROJECT, title: "Local copy", scenes: [], clips: [] }] } });
  const loaded = store.start();
  FakeSocket.last.open();
  FakeSocket.last.receive({ type: "error", mid: null, code: "not_found", message: "no such project" });
  FakeSocket.last.drop(4404, "project not found");
  await loaded;
  const snap = store.getSnapshot();
  assert.equal(snap.isInitialLoad, false);
  assert.equal(snap.source, "local");
  assert.equal(snap.project.title, "Local copy");
  assert.equal(snap.connection, "closed");
  store.stop();
  editor.close();
});

test("edits made on a copy shown because syncd does not have the project count as unsent until the connection joins", async (t) => {
  const { editor, store } = setup(t, { fallback: { projects: [{ id: PROJECT, title: "Local copy", scenes: [], clips: [] }] } });
  const loaded = store.start();
  FakeSocket.last.open();
  FakeSocket.last.drop(4404, "project not found");
  await loaded;
  assert.equal(store.getSnapshot().source, "local");
  assert.equal(editor.hasUnsentEdits, false, "nothing typed yet");
  store.updateProject({ title: "Typed on the copy" }).catch(() => undefined);
  assert.equal(editor.hasUnsentEdits, true, "closed, but an adoption will send it");
  editor.connect().catch(() => undefined);
  join();
  assert.equal(editor.hasUnsentEdits, true, "sent, not yet acknowledged");
  FakeSocket.last.drop(4404, "project deleted");
  assert.equal(editor.hasUnsentEdits, false, "a project deleted since: no connect will send it");
  store.stop();
  editor.close();
});

test("a store from a studio shares its connection and the last stop closes it", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket, fetch: async () => new Response("[]") });
  const a = new ProjectStore({ projectId: PROJECT, studio });
  const b = new ProjectStore({ projectId: PROJECT, studio });
  const loading = Promise.all([a.start(), b.start()]);
  assert.equal(FakeSocket.instances.length, 1);
  join();
  await loading;
  assert.equal(b.getSnapshot().project.title, "The Lighthouse");
  a.stop();
  await new Promise((done) => setImmediate(done));
  assert.equal(FakeSocket.last.closedWith, null);
  b.stop();
  assert.equal(FakeSocket.last.closedWith, null, "closed after the current task, not during it");
  await new Promise((done) => setImmediate(done));
  assert.equal(FakeSocket.last.closedWith.code, 1000);
  await assert.rejects(a.saveNow(), /start\(\) first/);
});

test("a reconnect into a new epoch does not leave the status waiting on old seqs", async (t) => {
  const { editor, store } = setup(t, { autoSaveDelay: null });
  let socket = await startLive(store);
  socket.take();
  const edit = store.updateScene("s1", { heading: "x" });
  socket.receive({ type: "ack", mid: 1, seq: 40 });
  await edit;
  socket.drop(1012, "daemon restarting");
  now += 1;
  t.mock.timers.tick(1000);
  socket = FakeSocket.last;
  socket.open();
  socket.receive(welcome(3, "e2"));
  socket.receive({ type: "snapshot", epoch: "e2", seq: 3, project: { id: PROJECT }, scenes: [], clips: [], saved_seq: 0 });
  assert.equal(store.getSnapshot().saveStatus, "unsaved");
  socket.receive({ type: "saved", seq: 3, at: "2026-12-01T10:00:02.000Z" });
  assert.equal(store.getSnapshot().saveStatus, "saved");
  store.stop();
  editor.close();
});

const LOCAL = { projects: [{ id: PROJECT, title: "Local copy", scenes: [], clips: [] }] };

test("a first load that timed out becomes live when the connection joins later, and its error goes", async (t) => {
  const { editor, store } = setup(t, { loadTimeout: 1000 });
  const loaded = store.start();
  t.mock.timers.tick(1000);
  await loaded;
  let snap = store.getSnapshot();
  assert.equal(snap.isInitialLoad, true, "still trying");
  assert.ok(snap.error instanceof TimeoutError);
  join();
  snap = store.getSnapshot();
  assert.equal(snap.isInitialLoad, false);
  assert.equal(snap.source, "syncd");
  assert.equal(snap.project.title, "The Lighthouse");
  assert.equal(snap.error, null);
  store.stop();
  editor.close();
});

test("a project shown from the fallback after a timeout is replaced by the live one when the connection joins", async (t) => {
  const { editor, store } = setup(t, { loadTimeout: 1000, fallback: LOCAL });
  const loaded = store.start();
  t.mock.timers.tick(1000);
  await loaded;
  assert.equal(store.getSnapshot().source, "local");
  assert.equal(store.getSnapshot().project.title, "Local copy");
  join();
  assert.equal(store.getSnapshot().source, "syncd");
  assert.equal(store.getSnapshot().project.title, "The Lighthouse");
  const socket = FakeSocket.last;
  const edit = store.updateProject({ title: "Edited" });
  socket.receive({ type: "change", seq: 1, table: "projects", op: "update", id: PROJECT, set: { title: "Edited" }, origin: "editor", client_id: editor.clientId, mid: 1 });
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  await edit;
  assert.equal(store.getSnapshot().project.title, "Edited", "the user's own edit shows");
  store.stop();
  editor.close();
});

test("a project syncd does not have, without a fallback, ends the initial load with the error", async (t) => {
  const { editor, store } = setup(t);
  const loaded = store.start();
  FakeSocket.last.open();
  FakeSocket.last.receive({ type: "error", mid: null, code: "not_found", message: "no such project" });
  FakeSocket.last.drop(4404, "project not found");
  await loaded;
  const snap = store.getSnapshot();
  assert.equal(snap.isInitialLoad, false);
  assert.equal(snap.project, null);
  assert.equal(snap.source, null);
  assert.ok(snap.error instanceof ClientClosed);
  assert.equal(snap.error.code, 4404);
  store.stop();
  editor.close();
});

test("the calls reject rather than throw: before start(), and with a value JSON cannot carry", async (t) => {
  const { editor, store } = setup(t);
  const early = store.updateScene("s1", { heading: "x" });
  assert.ok(early instanceof Promise);
  await assert.rejects(early, /call start\(\) first/);
  await assert.rejects(store.reorderClips(["k1"]), /call start\(\) first/);
  await startLive(store);
  const bigint = store.updateScene("s1", { duration: 1n });
  assert.ok(bigint instanceof Promise);
  await assert.rejects(bigint, TypeError);
  assert.deepEqual(editor.unacked, []);
  store.stop();
  editor.close();
});

test("a field the store cannot write is refused, naming it and the fields it can", async (t) => {
  const { editor, store } = setup(t);
  const socket = await startLive(store);
  socket.take();
  const project = store.updateProject({ colour: "red", title: "Red" });
  const scene = store.updateScene("s1", { heading: "x", mood: 1, tempo: 2 });
  project.catch(() => undefined); // checked below, once nothing was sent
  scene.catch(() => undefined);
  assert.deepEqual(socket.take(), [], "nothing sent");
  await assert.rejects(project, {
    name: "TypeError",
    message: 'updateProject: "colour" is not a field of a project; an editor may write title, script, status, aspectRatio and settings',
  });
  await assert.rejects(scene, /updateScene s1: "mood" and "tempo" are not fields of a scene/);
  const edit = store.updateScene("s1", { id: "s1", projectId: PROJECT, createdAt: "2026-01-01", heading: "Read-only fields are left out" });
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Read-only fields are left out" } }]);
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  await edit;
  store.stop();
  editor.close();
});

test("a store stopped and started again at once (StrictMode) keeps one connection and shows no error", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  const store = new ProjectStore({ projectId: PROJECT, studio });
  void store.start();
  store.stop();
  const loaded = store.start();
  await new Promise((done) => setImmediate(done));
  assert.equal(FakeSocket.instances.length, 1);
  assert.equal(FakeSocket.last.closedWith, null);
  join();
  await loaded;
  assert.equal(store.getSnapshot().isInitialLoad, false);
  assert.equal(store.getSnapshot().error, null);
  store.stop();
  studio.close();
});

test("what a stopped store's load ends with later is ignored", async (t) => {
  const { editor, store } = setup(t);
  const loaded = store.start();
  store.stop();
  editor.close(); // the load under way fails with ClientClosed 1000
  await loaded;
  assert.equal(store.getSnapshot().error, null);
  assert.equal(store.getSnapshot().isInitialLoad, true);
});

test("the user's own edit shows at once, before the daemon answers; a refused one gives the server's value back", async (t) => {
  const { editor, store } = setup(t);
  const socket = await startLive(store);
  socket.take();
  const first = store.updateScene("s1", { heading: "Dusk, seen" });
  const shown = store.getSnapshot();
  assert.equal(shown.project.scenes[0].heading, "Dusk, seen", "shown without waiting for the echo");
  assert.equal(shown.project.scenes[1].heading, "The lamp");
  socket.receive({ type: "presence", editors: [{ client_id: editor.clientId, user_id: null }], count: 1 });
  assert.equal(store.getSnapshot().project.scenes[0], shown.project.scenes[0], "the pending row keeps its object while nothing in it changed");

  const second = store.updateScene("s2", { heading: 42 });
  assert.equal(store.getSnapshot().project.scenes[1].heading, 42);
  socket.receive({ type: "change", seq: 1, table: "scenes", op: "update", id: "s1", set: { heading: "Dusk, seen" }, origin: "editor", client_id: editor.clientId, mid: 1 });
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  socket.receive({ type: "error", mid: 2, code: "bad_request", message: "scenes.heading: expected a string" });
  await first;
  await assert.rejects(second);
  const after = store.getSnapshot();
  assert.equal(after.project.scenes[0].heading, "Dusk, seen");
  assert.equal(after.project.scenes[1].heading, "The lamp", "the refused edit is gone");
  store.stop();
  editor.close();
});

test("edits made while the fallback copy is shown show on it at once, and are sent once the connection joins", async (t) => {
  const scene = { id: "5CE00000-0000-4000-8000-00000000000A", sceneIndex: 0, heading: "Dawn" };
  const fallback = { projects: [{ id: PROJECT, title: "Local copy", scenes: [scene], clips: [] }] };
  const { editor, store } = setup(t, { loadTimeout: 1000, fallback });
  const loaded = store.start();
  t.mock.timers.tick(1000);
  await loaded;
  assert.equal(store.getSnapshot().source, "local");
  const edit = store.updateProject({ title: "Typed while away" });
  const sceneEdit = store.updateScene(scene.id, { heading: "Dawn, later" });
  const shown = store.getSnapshot();
  assert.equal(shown.source, "local");
  assert.equal(shown.project.title, "Typed while away", "shown on the local copy");
  assert.deepEqual(shown.project.scenes.map((row) => [row.id, row.heading]), [[scene.id.toLowerCase(), "Dawn, later"]]);
  join();
  const socket = FakeSocket.last;
  assert.equal(store.getSnapshot().project.title, "Typed while away", "still shown over the live project until acknowledged");
  assert.deepEqual(socket.take().filter((frame) => frame.type === "patch").map((frame) => frame.set), [{ title: "Typed while away" }, { heading: "Dawn, later" }]);
  socket.receive({ type: "error", mid: 2, code: "not_found", message: "scenes row 5ce… does not exist" });
  await assert.rejects(sceneEdit);
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  socket.receive({ type: "change", seq: 1, table: "projects", op: "update", id: PROJECT, set: { title: "Typed while away" }, origin: "editor", client_id: editor.clientId, mid: 1 });
  await edit;
  assert.equal(store.getSnapshot().project.title, "Typed while away");
  store.stop();
  editor.close();
});

test("a snapshot that replaces rows at the same seq shows under the pending edits", async (t) => {
  const { editor, store } = setup(t);
  const socket = await startLive(store);
  const edit = store.updateScene("s1", { heading: "Mine" });
  assert.equal(store.getSnapshot().project.scenes[1].heading, "The lamp");
  // A change that does not fit the view (an update of a row it lacks) makes the client resync.
  socket.receive({ type: "change", seq: 1, table: "scenes", op: "update", id: "nope", set: { heading: "?" }, origin: "db", client_id: null, mid: null });
  const next = FakeSocket.last;
  assert.notEqual(next, socket);
  next.open();
  next.receive(welcome(0));
  const scenes = snapshot().scenes.map((row) => (row.id === "s2" ? { ...row, heading: "Lamp, from the daemon" } : row));
  next.receive(snapshot(0, "e1", { scenes }));
  const shown = store.getSnapshot().project.scenes;
  assert.equal(shown[0].heading, "Mine", "the pending edit still shows");
  assert.equal(shown[1].heading, "Lamp, from the daemon", "and the snapshot's rows under it");
  store.stop();
  editor.close();
  await assert.rejects(edit);
});

test("syncScenes with a function gets the scenes the store shows, the user's edits in flight included", async (t) => {
  const { editor, store } = setup(t);
  const S1 = "5ce00000-0000-4000-8000-000000000001";
  const S2 = "5ce00000-0000-4000-8000-000000000002";
  const scenes = [
    { id: S1, project_id: PROJECT, scene_index: 0, heading: "Dusk", body: "", duration: 6, voice_id: null },
    { id: S2, project_id: PROJECT, scene_index: 1, heading: "The lamp", body: "", duration: 7.5, voice_id: null },
  ];
  const socket = await startLive(store, { scenes });
  socket.take();
  const typed = store.updateScene(S2, { heading: "The lamp, lit" });
  const shown = store.getSnapshot().project.scenes;
  let given = null;
  const synced = store.syncScenes((current) => {
    given = current;
    return [...current].reverse();
  });
  assert.equal(given, shown, "the very rows the store shows");
  assert.deepEqual(given.map((scene) => scene.heading), ["Dusk", "The lamp, lit"]);
  await new Promise((done) => setImmediate(done));
  assert.deepEqual(
    socket.take().map((frame) => [frame.type, frame.id, frame.set]),
    [["patch", S2, { heading: "The lamp, lit" }], ["patch", S2, { scene_index: 0 }], ["patch", S1, { scene_index: 1 }]],
  );
  store.stop();
  editor.close();
  await Promise.allSettled([typed, synced]);
});
