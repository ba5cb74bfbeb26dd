// The studio's calls over the WebSocket, against a scripted socket: which frames each call sends,
// and what it refuses to send.

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ProjectStore, SyncdStudio, TimeoutError } from "../dist/index.js";
import { FakeSocket, PROJECT, snapshot, welcome } from "./fake.mjs";

const S1 = "5ce00000-0000-4000-8000-000000000001";
const S2 = "5ce00000-0000-4000-8000-000000000002";
const S3 = "5ce00000-0000-4000-8000-000000000003";

const SCENES = [
  { id: S1, project_id: PROJECT, scene_index: 0, heading: "Dusk", body: "", duration: 6, voice_id: null },
  { id: S2, project_id: PROJECT, scene_index: 1, heading: "The lamp", body: "", duration: 7.5, voice_id: null },
];

const settle = () => new Promise((done) => setImmediate(done));

beforeEach(() => FakeSocket.reset());

/** A studio whose connection to PROJECT is live on a FakeSocket; returns it and the socket. */
async function openStudio(t) {
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket });
  t.after(() => studio.close()); // a failed check must not leave it reconnecting
  const opened = studio.open(PROJECT);
  const socket = FakeSocket.last;
  socket.open();
  socket.receive(welcome());
  socket.receive(snapshot(0, "e1", { scenes: SCENES }));
  await opened;
  socket.take();
  return { studio, socket };
}

test("a studio refuses an address that is no daemon's at once, naming it", () => {
  for (const [url, words] of [
    ["127.0.0.1:8765", 'SyncdStudio: options.url is not a URL: "127.0.0.1:8765"'],
    ["localhost:8765", "SyncdStudio: options.url has the scheme localhost:"],
    ["ftp://studio", "SyncdStudio: options.url has the scheme ftp:"],
  ]) {
    assert.throws(() => new SyncdStudio({ url, WebSocket: FakeSocket }), (error) => error instanceof TypeError && error.message.startsWith(words), url);
  }
});

test("concurrent saveClip calls without an orderIndex each take the next free position", async (t) => {
  const { studio, socket } = await openStudio(t);
  const saves = ["one", "two", "three"].map((prompt) => studio.saveClip(PROJECT, { prompt }));
  await settle();
  const sent = socket.take();
  assert.deepEqual(sent.map((frame) => [frame.row.prompt, frame.row.order_index]), [["one", 1], ["two", 2], ["three", 3]]);
  let seq = 0;
  for (const frame of sent) {
    seq += 1;
    socket.receive({ type: "change", seq, table: "clips", op: "insert", id: frame.row.id, row: { ...frame.row, project_id: PROJECT }, origin: "editor", client_id: studio.clientId, mid: frame.mid });
    socket.receive({ type: "ack", mid: frame.mid, seq });
  }
  await Promise.all(saves);
  const next = studio.saveClip(PROJECT, { prompt: "four" });
  await settle();
  assert.equal(socket.take()[0].row.order_index, 4, "after the view has them, the next one follows the last");
  socket.receive({ type: "error", mid: 4, code: "bad_request", message: "refused" });
  await assert.rejects(next, /refused/);
  const again = studio.saveClip(PROJECT, { prompt: "four again" });
  await settle();
  assert.equal(socket.take()[0].row.order_index, 4, "a refused insert gives its position back");
  studio.close();
  await assert.rejects(again);
});

test("loadProject without a fallback that cannot reach syncd closes the connection it opened", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket, openTimeout: 1000 });
  const loading = studio.loadProject(PROJECT);
  t.mock.timers.tick(1000);
  await assert.rejects(loading, TimeoutError);
  assert.equal(studio.editor(PROJECT).status, "closed");
  t.mock.timers.tick(120_000);
  assert.equal(FakeSocket.instances.length, 1, "no reconnecting in the background");
  studio.close();
});

test("a failed loadProject leaves alone a connection a store uses", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const studio = new SyncdStudio({ url: "ws://127.0.0.1:1", WebSocket: FakeSocket, openTimeout: 1000 });
  const store = new ProjectStore({ projectId: PROJECT, studio, loadTimeout: 60_000 });
  void store.start();
  const loading = studio.loadProject(PROJECT, { projects: [{ id: PROJECT, title: "Local copy", scenes: [], clips: [] }] });
  t.mock.timers.tick(1000);
  assert.equal((await loading).source, "local");
  assert.notEqual(studio.editor(PROJECT).status, "closed");
  store.stop();
  studio.close();
});

test("a field that is not editable is refused before anything is sent, naming it and the editable ones", async (t) => {
  const { studio, socket } = await openStudio(t);
  const calls = [
    studio.updateProject(PROJECT, { colour: "red" }),
    studio.saveClip(PROJECT, { prompt: "x", promt: "y" }),
    studio.syncScenes(PROJECT, [{ id: S1, title: "x" }]),
    studio.createProject({ title: "x", colour: "red" }),
    studio.adoptProject({ id: PROJECT, title: "x", scenes: [{ id: S1, mood: "dark" }], clips: [] }),
  ];
  calls.forEach((call) => call.catch(() => undefined)); // checked one by one below
  await settle();
  assert.deepEqual(socket.take(), [], "nothing sent");
  await assert.rejects(calls[0], {
    name: "TypeError",
    message: 'updateProject: "colour" is not a field of a project; an editor may write title, script, status, aspectRatio and settings',
  });
  await assert.rejects(calls[1], /saveClip: "promt" is not a field of a clip; an editor may write sceneId, provider, prompt/);
  await assert.rejects(calls[2], /syncScenes: scenes\[0\]: "title" is not a field of a scene/);
  await assert.rejects(calls[3], /createProject: "colour" is not a field of a project/);
  await assert.rejects(calls[4], /adoptProject: scenes\[0\]: "mood" is not a field of a scene/);
  const edit = studio.updateProject(PROJECT, { id: PROJECT, userId: null, createdAt: "2026-01-01T00:00:00Z", title: "Kept" });
  await settle();
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "projects", id: PROJECT, set: { title: "Kept" } }], "read-only fields are left out");
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  await edit;
  studio.close();
});

test("syncScenes with one bad scene sends nothing and names the scene and the field", async (t) => {
  const { studio, socket } = await openStudio(t);
  const edited = [{ ...SCENES[0], heading: "Edited" }, SCENES[1], { id: S3, heading: "New", duration: -1 }];
  const calls = [
    studio.syncScenes(PROJECT, edited),
    studio.syncScenes(PROJECT, [{ ...SCENES[0], heading: "Edited" }, { ...SCENES[1], duration: 1n }]),
    studio.syncScenes(PROJECT, [{ ...SCENES[0], heading: "Edited" }, { id: "nope", heading: "x" }]),
    studio.syncScenes(PROJECT, [{ ...SCENES[0], heading: "Edited" }, SCENES[0]]),
  ];
  calls.forEach((call) => call.catch(() => undefined)); // checked one by one below
  await settle();
  assert.deepEqual(socket.take(), [], "not one frame");
  await assert.rejects(calls[0], {
    name: "TypeError",
    message: "syncScenes: scenes[2].duration: expected seconds (a number, 0 or more), got -1",
  });
  await assert.rejects(calls[1], /syncScenes: scenes\[1\]\.duration: expected seconds .*got the bigint 1n/);
  await assert.rejects(calls[2], /syncScenes: scenes\[1\]\.id: expected a UUID, got "nope"/);
  await assert.rejects(calls[3], /syncScenes: scenes\[1\]\.id: .* is listed twice/);
  assert.equal(studio.editor(PROJECT).view.scenes.get(S1).heading, "Dusk");
  studio.close();
});

test("syncScenes inserts a scene without an id as a new one, with an id of its own", async (t) => {
  const { studio, socket } = await openStudio(t);
  const synced = studio.syncScenes(PROJECT, [SCENES[0], { heading: "Written by the model" }, SCENES[1]]);
  await settle();
  const sent = socket.take();
  assert.deepEqual(sent.map((frame) => [frame.type, frame.row?.heading ?? frame.set]), [["insert", "Written by the model"], ["patch", { scene_index: 2 }]]);
  assert.match(sent[0].row.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(sent[0].row.scene_index, 1);
  studio.close();
  await assert.rejects(synced);
});

test("syncScenes finds existing scenes by id in any case", async (t) => {
  const { studio, socket } = await openStudio(t);
  const upper = SCENES.map((scene) => ({ ...scene, id: scene.id.toUpperCase() }));
  const same = studio.syncScenes(PROJECT, upper);
  await settle();
  assert.deepEqual(socket.take(), [], "nothing to change: no delete, no insert");
  assert.equal(await same, null);
  const edit = studio.syncScenes(PROJECT, [{ ...upper[1], heading: "Changed" }, upper[0]]);
  await settle();
  assert.deepEqual(
    socket.take().map((frame) => [frame.type, frame.id, frame.set]),
    [
      ["patch", S2, { heading: "Changed", scene_index: 0 }],
      ["patch", S1, { scene_index: 1 }],
    ],
  );
  studio.close();
  await assert.rejects(edit);
});

test("syncScenes compares with the scenes as this client's edits in flight will leave them", async (t) => {
  const { studio, socket } = await openStudio(t);
  const added = { id: S3, heading: "Homeward" };
  const first = studio.syncScenes(PROJECT, [...SCENES, added]);
  await settle();
  assert.deepEqual(socket.take().map((frame) => [frame.type, frame.row?.id]), [["insert", S3]]);
  // Before the daemon's echo: the new scene edited, and the first scene's heading set and set back.
  const second = studio.syncScenes(PROJECT, [{ ...SCENES[0], heading: "Nightfall" }, SCENES[1], { ...added, heading: "Home" }]);
  await settle();
  const third = studio.syncScenes(PROJECT, [SCENES[0], SCENES[1], { ...added, heading: "Home" }]);
  await settle();
  assert.deepEqual(
    socket.take().map((frame) => [frame.type, frame.id, frame.set]),
    [
      ["patch", S1, { heading: "Nightfall" }],
      ["patch", S3, { heading: "Home" }],
      ["patch", S1, { heading: "Dusk" }],
    ],
    "the new scene is patched, not inserted again; the heading set back is sent",
  );
  studio.close();
  await Promise.allSettled([first, second, third]);
});

test("syncScenes with a function builds the list from the scenes as they are when it is sent", async (t) => {
  const { studio, socket } = await openStudio(t);
  const theirs = { id: S3, project_id: PROJECT, scene_index: 2, heading: "Theirs", body: "", duration: 5, voice_id: null };
  const before = studio.editor(PROJECT).view.ordered("scenes").map((row) => ({ id: row.id, heading: row.heading }));
  // While this caller waits (for a model to write a scene, say), another editor adds a scene and
  // renames the first one.
  socket.receive({ type: "change", seq: 1, table: "scenes", op: "insert", id: S3, row: theirs, origin: "editor", client_id: "other", mid: 1 });
  socket.receive({ type: "change", seq: 2, table: "scenes", op: "update", id: S1, set: { heading: "Renamed" }, origin: "editor", client_id: "other", mid: 2 });
  const S4 = "5ce00000-0000-4000-8000-000000000004";
  let given = null;
  const fresh = studio.syncScenes(PROJECT, (current) => {
    given = current.map((scene) => [scene.id, scene.heading]);
    return [...current, { id: S4, heading: "Generated" }];
  });
  await settle();
  assert.deepEqual(given, [[S1, "Renamed"], [S2, "The lamp"], [S3, "Theirs"]]);
  assert.deepEqual(socket.take().map((frame) => [frame.type, frame.row?.id, frame.row?.scene_index]), [["insert", S4, 3]]);
  // The same with the list built before the wait: the other editor's work is undone.
  const stale = studio.syncScenes(PROJECT, [...before, { id: S4, heading: "Generated" }]);
  await settle();
  assert.deepEqual(
    socket.take().map((frame) => [frame.type, frame.id, frame.set]),
    [["delete", S3, undefined], ["patch", S1, { heading: "Dusk" }], ["patch", S4, { scene_index: 2 }]],
  );
  studio.close();
  await Promise.allSettled([stale, fresh]);
});

test("loadProject of a project this tab is editing includes the edits still in flight", async (t) => {
  const { studio, socket } = await openStudio(t);
  const edit = studio.updateProject(PROJECT, { title: "Lighthouse, cut 2" });
  await settle();
  assert.equal(socket.take()[0].type, "patch");
  const { project, source } = await studio.loadProject(PROJECT);
  assert.equal(source, "syncd");
  assert.equal(project.title, "Lighthouse, cut 2");
  studio.close();
  await assert.rejects(edit);
});
