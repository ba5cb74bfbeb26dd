// The calls that go to syncd's HTTP API, against a tiny local HTTP server that records requests
// (the daemon's API is tested end to end once it serves these paths), and adoptProject and the
// Redux fallback of loadProject against an in-memory syncd.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, beforeEach, test } from "node:test";

import { ClientClosed, FILE_URL_SECONDS, FileUrls, HttpApi, HttpError, HttpNetworkError, PROJECTS_PATH, SyncdStudio } from "../dist/index.js";
import { FakeSyncd, MemoryStorage } from "./fake.mjs";

const requests = [];
const routes = new Map();
let server;
let base;

/** An in-memory syncd that has the projects the local server's `POST /v1/projects` creates. */
function creatingSyncd() {
  const syncd = new FakeSyncd();
  route("POST", "/v1/projects", 201, (body) => {
    syncd.addProject({ ...body, user_id: null });
    return [201, { project: body }];
  });
  return syncd;
}

function route(method, path, status, body) {
  routes.set(`${method} ${path}`, typeof body === "function" ? body : () => [status, body]);
}

before(async () => {
  server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      const body = text ? JSON.parse(text) : undefined;
      requests.push({ method: req.method, path: req.url, auth: req.headers.authorization ?? null, type: req.headers["content-type"] ?? null, body });
      const handler = routes.get(`${req.method} ${req.url}`);
      const [status, answer] = handler ? handler(body) : [404, { error: "not_found", message: `no route ${req.url}` }];
      if (status === "drop") return req.socket.destroy(); // the answer is lost on the way
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(answer === undefined ? "" : JSON.stringify(answer));
    });
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((done) => server.close(done)));

beforeEach(() => {
  requests.length = 0;
  routes.clear();
});


test("the API's base keeps the path a proxy serves the daemon under, from any of its addresses", () => {
  const base = (url) => new HttpApi({ baseUrl: url }).baseUrl;
  assert.equal(base("http://127.0.0.1:8765"), "http://127.0.0.1:8765");
  assert.equal(base("http://127.0.0.1:8765/v1"), "http://127.0.0.1:8765", "as `syncd run` prints it");
  assert.equal(base("https://studio.example.com/syncd/"), "https://studio.example.com/syncd");
  assert.equal(base("wss://studio.example.com/syncd/v1/editor"), "https://studio.example.com/syncd");
  assert.equal(base("ws://127.0.0.1:8765/v1/editor"), "http://127.0.0.1:8765");
  assert.equal(base("wss://studio.example.com/live"), "https://studio.example.com", "an editor path of a proxy's own says nothing of the API");
});

test("createProject posts the editable fields and the id, with the token; the answer comes back camelCase", async () => {
  route("POST", PROJECTS_PATH, 201, (body) => [201, { project: { ...body, user_id: null, created_at: "2026-12-01T00:00:00Z" } }]);
  const studio = new SyncdStudio({ url: base, token: "tok", WebSocket: new FakeSyncd().WebSocket });
  const project = await studio.createProject({ id: "0f0e0000-0000-4000-8000-00000000000a", title: "Trailer", aspectRatio: "9:16", version: 4, userId: "someone" });
  assert.deepEqual(requests, [
    {
      method: "POST",
      path: "/v1/projects",
      auth: "Bearer tok",
      type: "application/json",
      body: { id: "0f0e0000-0000-4000-8000-00000000000a", title: "Trailer", aspect_ratio: "9:16" },
    },
  ]);
  assert.equal(project.aspectRatio, "9:16");
  assert.equal(project.createdAt, "2026-12-01T00:00:00Z");
});

test("the list, voice and export calls use the paths of endpoints.ts", async () => {
  route("GET", "/v1/projects", 200, [{ id: "p1", title: "A" }]);
  route("GET", "/v1/voices", 200, { voices: [{ id: "v1", provider_voice_id: "x" }] });
  route("POST", "/v1/voices", 201, { voice: { id: "v2", name: "Narrator" } });
  route("PATCH", "/v1/voices/v2", 200, { id: "v2", name: "Narrator 2" });
  route("DELETE", "/v1/voices/v2", 204, undefined);
  route("GET", "/v1/projects/p1/exports", 200, { exports: [{ id: "x1", status: "pending", file_url: null }] });
  route("POST", "/v1/projects/p1/exports", 201, { export: { id: "x2", status: "pending" } });
  route("GET", "/v1/projects/p1", 200, { project: { id: "p1" } });
  route("DELETE", "/v1/projects/p1", 204, undefined);
  const studio = new SyncdStudio({ url: base.replace("http", "ws") + "/v1/editor", WebSocket: new FakeSyncd().WebSocket });
  assert.deepEqual(await studio.listProjects(), [{ id: "p1", title: "A" }]);
  assert.deepEqual(await studio.listVoices(), [{ id: "v1", providerVoiceId: "x" }]);
  assert.deepEqual(await studio.createVoice({ id: "v2", name: "Narrator", providerVoiceId: "y" }), { id: "v2", name: "Narrator" });
  assert.deepEqual(await studio.updateVoice("v2", { name: "Narrator 2" }), { id: "v2", name: "Narrator 2" });
  await studio.deleteVoice("v2");
  assert.deepEqual(await studio.listExports("p1"), [{ id: "x1", status: "pending", fileUrl: null }]);
  assert.deepEqual(await studio.requestExport("p1", { format: "mp4" }), { id: "x2", status: "pending" });
  assert.deepEqual(await studio.http.getProject("p1"), { id: "p1" });
  await studio.http.deleteProject("p1");
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.path} ${r.auth} ${JSON.stringify(r.body ?? null)}`),
    [
      "GET /v1/projects null null",
      "GET /v1/voices null null",
      'POST /v1/voices null {"id":"v2","name":"Narrator","provider_voice_id":"y"}',
      'PATCH /v1/voices/v2 null {"name":"Narrator 2"}',
      "DELETE /v1/voices/v2 null null",
      "GET /v1/projects/p1/exports null null",
      'POST /v1/projects/p1/exports null {"format":"mp4"}',
      "GET /v1/projects/p1 null null",
      "DELETE /v1/projects/p1 null null",
    ],
  );
});

test("fileUrl asks syncd for a new signature of a stored signed URL, once per file; other URLs come back as they are", async () => {
  const path = "projects/0f000000-0000-4000-8000-000000000001/clips/s1-pika-1.mp4";
  let signed = 0;
  route("POST", `/v1/storage/sign/clips/${path}`, 200, () => [200, { signed_url: `${base}/fresh/${(signed += 1)}` }]);
  const studio = new SyncdStudio({ url: base, WebSocket: new FakeSyncd().WebSocket, token: "editor-token" });
  const stored = `https://abc.supabase.co/storage/v1/object/sign/clips/${path}?token=expired`;
  const [one, two] = await Promise.all([studio.fileUrl(stored), studio.fileUrl(`${base}/storage/v1/object/sign/clips/${path}?token=other`)]);
  assert.deepEqual([one, two], [`${base}/fresh/1`, `${base}/fresh/1`], "one request for the same file");
  const thumbnail = `${base}/storage/v1/object/public/thumbnails/projects/p/thumbnails/t.png`;
  assert.equal(await studio.fileUrl(thumbnail), thumbnail);
  assert.equal(await studio.fileUrl("https://cdn.example.com/a.mp4"), "https://cdn.example.com/a.mp4");
  assert.equal(await studio.fileUrl("not a url"), "not a url");
  assert.equal(await studio.fileUrl(null), null);
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.path} ${r.auth} ${JSON.stringify(r.body)}`),
    [`POST /v1/storage/sign/clips/${path} Bearer editor-token {"expires_in":${FILE_URL_SECONDS}}`],
  );
  const missing = "projects/0f000000-0000-4000-8000-000000000001/clips/gone.mp4";
  await assert.rejects(studio.fileUrl(`${base}/storage/v1/object/sign/clips/${missing}?token=x`), (error) => error instanceof HttpError && error.status === 404);
  route("POST", `/v1/storage/sign/clips/${missing}`, 200, { signed_url: `${base}/back` });
  assert.equal(await studio.fileUrl(`${base}/storage/v1/object/sign/clips/${missing}?token=x`), `${base}/back`, "a refusal is not kept");
});

test("a fresh URL is handed out while half its life is left, then asked for again", async () => {
  let now = 1_000_000;
  const asked = [];
  const urls = new FileUrls(async (bucket, path, expiresIn) => {
    asked.push([bucket, path, expiresIn]);
    return `signed-${asked.length}`;
  }, () => now);
  const stored = "http://127.0.0.1:8765/storage/v1/object/sign/audio/projects/p/audio/voice%20take.mp3?token=1.x";
  assert.equal(await urls.fresh(stored), "signed-1");
  now += (FILE_URL_SECONDS / 2) * 1000 - 1;
  assert.equal(await urls.fresh(stored), "signed-1");
  now += 1;
  assert.equal(await urls.fresh(stored), "signed-2");
  assert.deepEqual(asked, [["audio", "projects/p/audio/voice take.mp3", FILE_URL_SECONDS], ["audio", "projects/p/audio/voice take.mp3", FILE_URL_SECONDS]]);
});

test("an error status rejects with HttpError carrying the protocol's code; a missing project is null", async () => {
  // The daemon's shape (docs/http.md, syncd/api/http.py): {"error": code, "message": "…"}.
  route("POST", "/v1/projects", 403, { error: "forbidden", message: "not your user id" });
  const api = new HttpApi({ baseUrl: base });
  await assert.rejects(
    api.createProject({ title: "x" }),
    (error) => error instanceof HttpError && error.status === 403 && error.code === "forbidden" && /POST \/v1\/projects: 403 forbidden: not your user id/.test(error.message),
  );
  assert.equal(await api.getProject("nope"), null);
  route("GET", "/v1/voices", 200, { nothing: true });
  await assert.rejects(api.listVoices(), HttpError);
});

test("a body JSON cannot carry is refused before it is sent, naming where; undefined fields are left out", async () => {
  route("POST", "/v1/projects", 201, (body) => [201, { project: body }]);
  const api = new HttpApi({ baseUrl: base });
  const refused = [
    [{ title: "x", settings: { fps: NaN } }, "POST /v1/projects: body.settings.fps: NaN cannot be written as JSON"],
    [{ title: "x", settings: { cues: new Map([["a", 1]]) } }, "POST /v1/projects: body.settings.cues: a Map cannot be written as JSON"],
    [{ title: "x", settings: { at: new Date(0) } }, "POST /v1/projects: body.settings.at: a Date cannot be written as JSON"],
    [{ title: "x", settings: { scale: Infinity } }, "POST /v1/projects: body.settings.scale: Infinity cannot be written as JSON"],
  ];
  for (const [fields, message] of refused) {
    await assert.rejects(api.createProject(fields), (error) => error instanceof TypeError && error.message === message);
  }
  assert.deepEqual(requests, []);
  assert.deepEqual(await api.createProject({ title: "x", script: undefined }), { title: "x" });
  assert.deepEqual(requests[0].body, { title: "x" });
});

test("a request that gets no answer rejects with HttpNetworkError naming the method, the URL and why", async () => {
  const closed = createServer();
  await new Promise((done) => closed.listen(0, "127.0.0.1", done));
  const url = `http://127.0.0.1:${closed.address().port}`;
  await new Promise((done) => closed.close(done));
  const api = new HttpApi({ baseUrl: url });
  await assert.rejects(api.listVoices(), (error) => {
    assert.ok(error instanceof HttpNetworkError && error instanceof HttpError);
    assert.equal(error.status, 0);
    assert.match(error.message, new RegExp(`^GET ${url}/v1/voices: no answer from syncd: .*ECONNREFUSED`));
    return true;
  });
});

test("loadProject falls back to the Redux state when syncd does not have the project", async () => {
  const [live, only, neither] = ["11ee0000-0000-4000-8000-000000000001", "10ca1000-0000-4000-8000-000000000001", "0e0e0000-0000-4000-8000-000000000001"];
  const syncd = new FakeSyncd();
  syncd.addProject({ id: live, title: "Live" }, [{ id: "s1", scene_index: 0, heading: "A" }]);
  const studio = new SyncdStudio({ url: base, WebSocket: syncd.WebSocket });
  const redux = { projects: [{ id: only, title: "Only here", scenes: [{ id: "s9", heading: "B" }], clips: [] }] };
  const loaded = await studio.loadProject(live, redux);
  assert.equal(loaded.source, "syncd");
  assert.equal(loaded.project.title, "Live");
  assert.deepEqual(loaded.project.scenes.map((s) => s.heading), ["A"]);
  const local = await studio.loadProject(only, redux);
  assert.equal(local.source, "local");
  assert.equal(local.project.title, "Only here");
  assert.equal(local.project.scenes[0].sceneIndex, 0);
  await assert.rejects(studio.loadProject(neither, redux), (error) => error instanceof ClientClosed && error.code === 4404);
  studio.close();
});

test("adoptProject saves a local project to syncd with its id, once", async () => {
  const syncd = creatingSyncd();
  const storage = new MemoryStorage();
  const studio = new SyncdStudio({ url: base, WebSocket: syncd.WebSocket, storage });
  const local = {
    id: "4d0c0000-0000-4000-8000-000000000001",
    title: "From Redux",
    aspectRatio: "1:1",
    scenes: [
      { id: "4d0c0000-0000-4000-8000-000000000011", sceneIndex: 0, heading: "One" },
      { id: "4d0c0000-0000-4000-8000-000000000012", sceneIndex: 1, heading: "Two" },
    ],
    clips: [{ id: "4d0c0000-0000-4000-8000-000000000021", sceneId: "4d0c0000-0000-4000-8000-000000000011", prompt: "a", orderIndex: 0 }],
  };
  const first = await studio.adoptProject(local);
  assert.equal(first.adopted, true);
  assert.equal(first.project.id, local.id);
  assert.deepEqual(first.project.scenes.map((s) => s.heading), ["One", "Two"]);
  assert.equal(first.project.clips[0].sceneId, local.scenes[0].id);
  assert.deepEqual(requests.map((r) => [r.method, r.path, r.body]), [
    ["POST", "/v1/projects", { id: local.id, title: "From Redux", aspect_ratio: "1:1" }],
  ]);
  assert.deepEqual(storage.log, [["set", `syncd.adopting.${local.id}`], ["remove", `syncd.adopting.${local.id}`]], "noted until the rows were saved");
  const again = await studio.adoptProject(local);
  assert.equal(again.adopted, false);
  assert.equal(requests.length, 1, "a project syncd has is not created again");
  studio.close();
});

test("an adoption cut short (the tab closed after the create) is finished by the next call from the same browser", async () => {
  const syncd = new FakeSyncd();
  const id = "4d0c0000-0000-4000-8000-000000000003";
  const [one, two] = ["4d0c0000-0000-4000-8000-000000000031", "4d0c0000-0000-4000-8000-000000000032"];
  const clip = "4d0c0000-0000-4000-8000-000000000033";
  // What the first call saved before the tab closed: the project and one scene, since renamed live.
  syncd.addProject({ id, title: "Half adopted", user_id: null }, [{ id: one, project_id: id, scene_index: 0, heading: "One, renamed" }]);
  const storage = new MemoryStorage();
  storage.setItem(`syncd.adopting.${id}`, "2026-12-03T10:00:00.000Z");
  const studio = new SyncdStudio({ url: base, WebSocket: syncd.WebSocket, storage });
  const local = {
    id,
    title: "Half adopted",
    scenes: [{ id: one, heading: "One" }, { id: two, heading: "Two" }],
    clips: [{ id: clip, sceneId: two, prompt: "a", orderIndex: 0 }],
  };
  const adoption = await studio.adoptProject(local);
  assert.equal(adoption.adopted, true);
  assert.deepEqual(adoption.project.scenes.map((s) => s.heading), ["One, renamed", "Two"], "the rows syncd lacked, and only those");
  assert.deepEqual(adoption.project.clips.map((c) => c.id), [clip]);
  assert.equal(requests.length, 0, "the project is there: not created again");
  assert.equal(storage.getItem(`syncd.adopting.${id}`), null);
  assert.equal((await studio.adoptProject(local)).adopted, false, "finished: left as it is from now on");
  studio.close();
});

test("an adoption cut short before its create landed makes the project and its rows", async () => {
  const syncd = creatingSyncd();
  const id = "4d0c0000-0000-4000-8000-000000000004";
  const storage = new MemoryStorage();
  storage.setItem(`syncd.adopting.${id}`, "2026-12-03T10:00:00.000Z");
  const studio = new SyncdStudio({ url: base, WebSocket: syncd.WebSocket, storage });
  const adoption = await studio.adoptProject({ id, title: "Not made yet", scenes: [{ id: "4d0c0000-0000-4000-8000-000000000041", heading: "One" }], clips: [] });
  assert.equal(adoption.adopted, true);
  assert.deepEqual(adoption.project.scenes.map((s) => s.heading), ["One"]);
  assert.deepEqual(requests.map((r) => [r.method, r.body.id]), [["POST", id]]);
  assert.equal(storage.getItem(`syncd.adopting.${id}`), null);
  studio.close();
});

test("adoptProject whose create lost its answer sends it again and goes on", async () => {
  const syncd = new FakeSyncd();
  let tries = 0;
  route("POST", "/v1/projects", 201, (body) => {
    tries += 1;
    if (tries === 1) {
      syncd.addProject({ ...body, user_id: null }); // made, but the answer does not arrive
      return ["drop"];
    }
    return [200, { project: body }];
  });
  const studio = new SyncdStudio({ url: base, WebSocket: syncd.WebSocket });
  const id = "4d0c0000-0000-4000-8000-000000000002";
  const adopted = await studio.adoptProject({ id, title: "Lost answer", scenes: [{ id: "4d0c0000-0000-4000-8000-000000000013", heading: "One" }], clips: [] });
  assert.equal(adopted.adopted, true);
  assert.deepEqual(adopted.project.scenes.map((s) => s.heading), ["One"]);
  assert.deepEqual(requests.map((r) => r.body.id), [id, id]);
  studio.close();
});

test("loadProject falls back to the Redux state when syncd cannot be reached in time, and stops trying", async () => {
  const { FakeSocket } = await import("./fake.mjs");
  FakeSocket.reset();
  const studio = new SyncdStudio({ url: base, WebSocket: FakeSocket, openTimeout: 50 });
  const [p9, p8] = ["0f000000-0000-4000-8000-000000000009", "0f000000-0000-4000-8000-000000000008"];
  const redux = { projects: [{ id: p9, title: "Offline copy", scenes: [], clips: [] }] };
  const loaded = await studio.loadProject(p9, redux);
  assert.equal(loaded.source, "local");
  assert.equal(loaded.project.title, "Offline copy");
  assert.equal(studio.editor(p9).status, "closed");
  await assert.rejects(studio.loadProject(p8, redux), (error) => error.name === "TimeoutError");
  studio.close();
});

test("setToken changes the token of the HTTP calls and of the next hello", async () => {
  route("GET", "/v1/voices", 200, []);
  const { FakeSocket } = await import("./fake.mjs");
  FakeSocket.reset();
  const studio = new SyncdStudio({ url: base, token: "old", WebSocket: FakeSocket });
  const editor = studio.editor("0f000000-0000-4000-8000-000000000001");
  studio.setToken("new");
  await studio.listVoices();
  assert.equal(requests.at(-1).auth, "Bearer new");
  editor.connect().catch(() => {});
  FakeSocket.last.open();
  assert.equal(FakeSocket.last.take()[0].token, "new");
  studio.close();
});

test("a token function gives the token of each HTTP call and of each hello", async () => {
  route("GET", "/v1/voices", 200, []);
  const { FakeSocket } = await import("./fake.mjs");
  FakeSocket.reset();
  let current = "one";
  const studio = new SyncdStudio({ url: base, token: async () => current, WebSocket: FakeSocket });
  await studio.listVoices();
  assert.equal(requests.at(-1).auth, "Bearer one");
  current = "two";
  await studio.listVoices();
  assert.equal(requests.at(-1).auth, "Bearer two");
  studio.editor("0f000000-0000-4000-8000-000000000001").connect().catch(() => {});
  await new Promise((resolve) => setImmediate(resolve));
  FakeSocket.last.open();
  assert.equal(FakeSocket.last.take()[0].token, "two");
  studio.setToken(() => {
    throw new Error("signed out");
  });
  await assert.rejects(studio.listVoices(), /signed out/);
  assert.throws(() => studio.setToken(7), /SyncdStudio\.setToken: the token must be a string, null or a function/);
  studio.close();
});

test("a create whose answer is lost, or that meets a restart (503), is sent again with the same id", async () => {
  const answers = ["drop", 503, 201];
  route("POST", PROJECTS_PATH, 201, (body) => {
    const status = answers.shift();
    return [status, status === 503 ? { error: "unavailable", message: "the daemon is stopping" } : { project: body }];
  });
  const studio = new SyncdStudio({ url: base, WebSocket: new FakeSyncd().WebSocket });
  const project = await studio.createProject({ title: "Trailer" });
  assert.equal(requests.length, 3);
  const ids = new Set(requests.map((request) => request.body.id));
  assert.equal(ids.size, 1, "every try names the same id");
  assert.match(project.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(ids.has(project.id));
});

test("reads, voice updates and deletes are asked again while syncd restarts; a delete that landed before its answer was lost is done", async () => {
  const answers = [503, 200];
  route("GET", PROJECTS_PATH, 200, () => {
    const status = answers.shift();
    return [status, status === 503 ? { error: "unavailable", message: "the daemon is stopping" } : { projects: [{ id: "p1", title: "Back" }] }];
  });
  const deletes = ["drop", 404];
  route("DELETE", "/v1/voices/v2", 204, () => {
    const status = deletes.shift();
    return [status, status === 404 ? { error: "not_found", message: "voice v2 does not exist" } : undefined];
  });
  route("DELETE", "/v1/voices/v3", 404, { error: "not_found", message: "voice v3 does not exist" });
  const updates = ["drop", 200];
  route("PATCH", "/v1/voices/v4", 200, () => {
    const status = updates.shift();
    return [status, { id: "v4", name: "Renamed" }];
  });
  const studio = new SyncdStudio({ url: base, WebSocket: new FakeSyncd().WebSocket });
  const projects = await studio.listProjects();
  assert.deepEqual(projects.map((project) => project.title), ["Back"]);
  await studio.deleteVoice("v2");
  await assert.rejects(studio.deleteVoice("v3"), (error) => error instanceof HttpError && error.status === 404, "a first 404 is the caller's");
  const voice = await studio.updateVoice("v4", { name: "Renamed" });
  assert.equal(voice.name, "Renamed");
  assert.deepEqual(
    requests.map((request) => `${request.method} ${request.path}`),
    ["GET /v1/projects", "GET /v1/projects", "DELETE /v1/voices/v2", "DELETE /v1/voices/v2", "DELETE /v1/voices/v3", "PATCH /v1/voices/v4", "PATCH /v1/voices/v4"],
  );
});

test("a create refused for what it is (400, 409) is not sent again", async () => {
  route("POST", "/v1/voices", 409, { error: "conflict", message: "voice v1 exists with other values" });
  const studio = new SyncdStudio({ url: base, WebSocket: new FakeSyncd().WebSocket });
  await assert.rejects(studio.createVoice({ id: "v1", name: "Other" }), (error) => error instanceof HttpError && error.status === 409);
  assert.equal(requests.length, 1);
});
