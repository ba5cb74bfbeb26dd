// Unit tests of EditorClient over a scripted socket: reconnects, close codes, answers and events.

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ClientClosed, EditorClient, EditorError, editorUrl, TimeoutError } from "../dist/index.js";
import { FakeSocket, join, PROJECT, snapshot, welcome } from "./fake.mjs";

let now = 0;

function makeClient(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  now = 0;
  return new EditorClient({
    url: "http://127.0.0.1:8765",
    projectId: PROJECT,
    clientId: "c0ffee00-0000-4000-8000-000000000001",
    WebSocket: FakeSocket,
    jitter: () => 0,
    clock: () => now,
    ...options,
  });
}

/** A client that has joined, and its socket with the hello and join frames already taken. */
function joinedClient(t, options = {}) {
  const client = makeClient(t, options);
  client.connect().catch(() => {});
  join();
  const socket = FakeSocket.last;
  socket.take();
  return { client, socket };
}

/** Let time pass on both the client's clock and the mocked timers. */
function advance(t, seconds) {
  now += seconds;
  t.mock.timers.tick(seconds * 1000);
}

beforeEach(() => FakeSocket.reset());

test("the editor URL gets the editor path and a ws scheme", () => {
  assert.equal(editorUrl("http://127.0.0.1:8765"), "ws://127.0.0.1:8765/v1/editor");
  assert.equal(editorUrl("https://syncd.example.org/"), "wss://syncd.example.org/v1/editor");
  assert.equal(editorUrl("ws://127.0.0.1:1/v1/editor"), "ws://127.0.0.1:1/v1/editor");
});

test("the daemon's address behind a proxy keeps the path it is served under; its API's address is read as its own", () => {
  assert.equal(editorUrl("https://studio.example.com/syncd"), "wss://studio.example.com/syncd/v1/editor");
  assert.equal(editorUrl("https://studio.example.com/syncd/"), "wss://studio.example.com/syncd/v1/editor");
  assert.equal(editorUrl("http://127.0.0.1:8765/v1"), "ws://127.0.0.1:8765/v1/editor", "as `syncd run` prints the HTTP API");
  assert.equal(editorUrl("https://studio.example.com/syncd/v1/editor"), "wss://studio.example.com/syncd/v1/editor");
  assert.equal(editorUrl("wss://studio.example.com/live"), "wss://studio.example.com/live", "an editor URL is taken as it is");
});

test("connect says hello on open and resolves once the snapshot is in; a patch resolves with its ack", async (t) => {
  const client = makeClient(t);
  const joined = client.connect();
  assert.equal(client.status, "connecting");
  const socket = FakeSocket.last;
  assert.equal(socket.url, "ws://127.0.0.1:8765/v1/editor");
  socket.open();
  assert.deepEqual(socket.take(), [
    { type: "hello", protocol: 1, project_id: PROJECT, client_id: "c0ffee00-0000-4000-8000-000000000001", token: null, resume: null },
  ]);
  socket.receive(welcome());
  socket.receive(snapshot());
  assert.equal((await joined).session, "c1");
  assert.equal(client.status, "live");
  assert.equal(client.view.project.title, "The Lighthouse");

  const changes = [];
  client.on("change", (event) => changes.push(event));
  const ack = client.patch("scenes", "s1", { heading: "Nightfall" });
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Nightfall" } }]);
  assert.equal(client.view.scenes.get("s1").heading, "Dusk", "the view changes only with the server's change");
  socket.receive({ type: "change", seq: 1, table: "scenes", op: "update", id: "s1", set: { heading: "Nightfall" }, origin: "editor", client_id: client.clientId, mid: 1 });
  socket.receive({ type: "ack", mid: 1, seq: 1 });
  assert.deepEqual(await ack, { mid: 1, seq: 1 });
  assert.equal(client.view.scenes.get("s1").heading, "Nightfall");
  assert.deepEqual(changes.map((c) => c.seq), [1]);
  client.close();
});

test("a refused mutation rejects with the server's error; an error for no mutation is kept and emitted", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const socket = FakeSocket.last;
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const refused = client.patch("scenes", "s1", { colour: "red" });
  socket.receive({ type: "error", mid: 1, code: "bad_request", message: "patch.set.colour: no such field in scenes" });
  await assert.rejects(refused, (error) => error instanceof EditorError && error.code === "bad_request" && error.mid === 1);
  socket.receive({ type: "error", mid: null, code: "unavailable", message: "the database refused the save" });
  assert.equal(errors.length, 1);
  assert.equal(client.errors[0].code, "unavailable");
  client.close();
});

test("a lost connection reconnects after the backoff delay, resumes and resends the unacked mutation", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const first = FakeSocket.last;
  const ack = client.insert("clips", { id: "k2", order_index: 1 });
  first.take();
  first.drop(1006);
  assert.equal(client.status, "reconnecting");
  advance(t, 0.24);
  assert.equal(FakeSocket.instances.length, 1, "no reconnect before the delay (0.5 s × jitter 0 = 0.25 s)");
  advance(t, 0.01);
  assert.equal(FakeSocket.instances.length, 2);
  const second = FakeSocket.last;
  second.open();
  assert.deepEqual(second.take(), [
    { type: "hello", protocol: 1, project_id: PROJECT, client_id: client.clientId, token: null, resume: { epoch: "e1", seq: 0 } },
  ]);
  second.receive(welcome(0));
  assert.equal(client.status, "live");
  assert.deepEqual(second.take(), [{ type: "insert", mid: 1, table: "clips", row: { id: "k2", order_index: 1 } }]);
  second.receive({ type: "ack", mid: 1, seq: 1 });
  assert.deepEqual(await ack, { mid: 1, seq: 1 });
  client.close();
});

test("connections that cannot be opened are retried with a doubling delay", (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  const waits = [];
  client.on("disconnected", (event) => waits.push(event.retry_at - now));
  for (let i = 0; i < 4; i += 1) {
    FakeSocket.last.drop(1006);
    advance(t, waits.at(-1));
  }
  assert.deepEqual(waits, [0.25, 0.5, 1, 2]);
  assert.equal(FakeSocket.instances.length, 5);
  client.close();
});

for (const code of [1000, 1002, 1009, 4401, 4403, 4404, 4409]) {
  test(`close ${code} is final: connect rejects and no reconnect follows`, async (t) => {
    const client = makeClient(t);
    const joined = client.connect();
    FakeSocket.last.open();
    FakeSocket.last.drop(code, "refused");
    await assert.rejects(joined, (error) => error instanceof ClientClosed && error.code === code);
    advance(t, 60);
    assert.equal(FakeSocket.instances.length, 1);
    assert.equal(client.status, "closed");
  });
}

for (const code of [1001, 1006, 1008, 1011, 1012, 4408, 4429]) {
  test(`close ${code} reconnects by itself`, (t) => {
    const client = makeClient(t);
    client.connect().catch(() => {});
    join();
    FakeSocket.last.drop(code);
    advance(t, 0.25);
    assert.equal(FakeSocket.instances.length, 2);
    client.close();
  });
}

test("a gap closes the connection with 1000 and opens the next one at once, resuming", (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const first = FakeSocket.last;
  first.receive({ type: "change", seq: 2, table: "scenes", op: "update", id: "s1", set: { heading: "x" }, origin: "db", client_id: null, mid: null });
  assert.deepEqual(first.closedWith, { code: 1000, reason: "resync" });
  assert.equal(FakeSocket.instances.length, 2, "no wait after a gap");
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.take()[0].resume, { epoch: "e1", seq: 0 });
  first.drop(1000);
  assert.equal(client.status, "reconnecting", "the old socket's close is not the client's");
  client.close();
});

test("a protocol violation closes with 1002 and does not reconnect; waiting calls fail", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const socket = FakeSocket.last;
  const pending = client.patch("scenes", "s1", { heading: "x" });
  socket.receive("[1, 2]");
  assert.equal(socket.closedWith.code, 1002);
  await assert.rejects(pending, (error) => error instanceof ClientClosed && error.code === 1002);
  advance(t, 60);
  assert.equal(FakeSocket.instances.length, 1);
  assert.deepEqual(client.unacked, [1], "the mutation waits for a connection the user opens later");
});

test("presence, saved and renderer events are emitted; waitSaved resolves at its seq", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const socket = FakeSocket.last;
  const seen = [];
  client.on("presence", (editors) => seen.push(["presence", editors.length]));
  client.on("event", (event) => seen.push(["event", event.topic, event.data.progress]));
  client.on("saved", (saved) => seen.push(["saved", saved.seq]));
  const saved = client.waitSaved(1);
  socket.receive({ type: "presence", editors: [{ client_id: client.clientId, user_id: null }, { client_id: "other", user_id: "u" }] });
  socket.receive({ type: "event", topic: "render.progress", data: { clip_id: "k1", progress: 0.4 } });
  socket.receive({ type: "change", seq: 1, table: "clips", op: "update", id: "k1", set: { status: "ready" }, origin: "db", client_id: null, mid: null });
  socket.receive({ type: "saved", seq: 1, at: "2026-12-01T10:00:00.000Z" });
  assert.equal((await saved).at, "2026-12-01T10:00:00.000Z");
  assert.deepEqual(seen, [["presence", 2], ["event", "render.progress", 0.4], ["saved", 1]]);
  assert.equal(client.editors.length, 2);
  client.close();
});

test("ping resolves with the round trip once its pong comes", async (t) => {
  const { client, socket } = joinedClient(t);
  const rtt = client.ping();
  const [frame] = socket.take();
  assert.equal(frame.type, "ping");
  now += 0.012;
  socket.receive({ type: "pong", t: frame.t });
  assert.ok(Math.abs((await rtt) - 12) < 1e-6);
  client.close();
});

test("a connection that is not in sync within openTimeout is given up and retried", async (t) => {
  const client = makeClient(t, { openTimeout: 1000 });
  const joined = client.connect(5000);
  FakeSocket.last.open();
  advance(t, 1);
  assert.ok(FakeSocket.instances[0].closedWith, "the first socket is closed");
  advance(t, 0.25);
  assert.equal(FakeSocket.instances.length, 2);
  advance(t, 4);
  await assert.rejects(joined, TimeoutError);
  client.close();
});

test("close rejects waiting calls with 1000 and keeps the mutations for a later connect", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const pending = client.patch("scenes", "s1", { heading: "x" });
  client.close();
  await assert.rejects(pending, (error) => error instanceof ClientClosed && error.code === 1000 && error.kept === true);
  assert.deepEqual(client.unacked, [1]);
  const again = client.connect();
  const socket = FakeSocket.last;
  socket.open();
  socket.take();
  socket.receive(welcome(0));
  await again;
  assert.deepEqual(socket.take(), [{ type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "x" } }]);
  client.close();
});

test("without a WebSocket the client says what to pass", () => {
  const saved = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    assert.throws(() => new EditorClient({ url: "ws://127.0.0.1:1", projectId: PROJECT }), /options\.WebSocket/);
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
});

test("a lost connection fails the pings in flight; a wait for a saved seq carries over into a new epoch", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join(FakeSocket.last, 50);
  const rtt = client.ping();
  const saved = client.waitSaved(52);
  FakeSocket.last.drop(1012, "daemon restarting");
  await assert.rejects(rtt, (error) => error instanceof ClientClosed && error.code === 1012);
  advance(t, 0.25);
  const socket = FakeSocket.last;
  socket.open();
  socket.receive(welcome(2, "e2"));
  socket.receive(snapshot(2, "e2"));
  let done = false;
  saved.then(() => (done = true));
  socket.receive({ type: "saved", seq: 1, at: "2026-12-01T10:00:00.000Z" });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(done, false);
  socket.receive({ type: "saved", seq: 2, at: "2026-12-01T10:00:01.000Z" });
  assert.equal((await saved).seq, 2);
  client.close();
});

test("a project id in upper case is taken in lower case, as the daemon answers it; so are row ids", async (t) => {
  const client = makeClient(t, { projectId: PROJECT.toUpperCase(), clientId: "C0FFEE00-0000-4000-8000-00000000000A" });
  assert.equal(client.projectId, PROJECT);
  const joined = client.connect();
  const socket = FakeSocket.last;
  socket.open();
  const [hello] = socket.take();
  assert.equal(hello.project_id, PROJECT);
  assert.equal(hello.client_id, "c0ffee00-0000-4000-8000-00000000000a");
  socket.receive(welcome());
  socket.receive(snapshot());
  await joined;
  assert.equal(client.status, "live");
  const row = "5CE0E000-0000-4000-8000-00000000000B";
  client.patch("scenes", row, { heading: "x" }).catch(() => {});
  client.insert("clips", { id: row, prompt: "y" }).catch(() => {});
  client.delete("clips", row).catch(() => {});
  client.reorder("clips", [row]).catch(() => {});
  const sent = socket.take();
  assert.deepEqual(sent.map((frame) => frame.id ?? frame.row?.id ?? frame.ids[0]), Array(4).fill(row.toLowerCase()));
  client.close();
});

test("a missing or wrong url or project id fails at construction, saying which option and why", () => {
  const base = { url: "http://127.0.0.1:8765", projectId: PROJECT, WebSocket: FakeSocket };
  const cases = [
    [{ ...base, url: undefined }, /options\.url is missing; pass the daemon's address/],
    [{ ...base, url: "not a url" }, /options\.url is not a URL: "not a url"/],
    [{ ...base, url: "ftp://127.0.0.1" }, /options\.url has the scheme ftp:/],
    [{ ...base, projectId: undefined }, /options\.projectId is missing; it must be a UUID/],
    [{ ...base, projectId: 42 }, /options\.projectId is not a UUID: number 42/],
    [{ ...base, projectId: "p1" }, /options\.projectId is not a UUID: "p1"/],
    [{ ...base, clientId: "tab-1" }, /options\.clientId is not a UUID/],
    [{ ...base, token: 5 }, /options\.token: the token must be a string, null or a function that gives one, got number/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new EditorClient(options), (error) => error instanceof TypeError && message.test(error.message));
  }
});

test("calls that return a promise reject on a wrong argument instead of throwing, and use no mid", async (t) => {
  const { client, socket } = joinedClient(t);
  const calls = [
    [() => client.patch("scenes", "s1", { heading: undefined }), /^patch of scenes s1: nothing to change: every field in set is undefined \(heading\)$/],
    [() => client.patch("scenes", "s1", {}), /^patch of scenes s1: nothing to change: set is empty$/],
    [() => client.patch("scenes", "s1", null), /^patch of scenes s1: set must be an object of fields, got null$/],
    [() => client.patch("scenes", "s1", { duration: Infinity }), /^patch of scenes s1: patch\.set\.duration: Infinity cannot be written as JSON$/],
    [() => client.patch("scenes", "s1", { duration: 1n }), /^patch of scenes s1: patch\.set\.duration: a bigint cannot/],
    [() => client.insert("clips", { id: "k9", metadata: { fps: undefined } }), /^insert into clips of k9: insert\.row\.metadata\.fps: undefined cannot/],
    [() => client.reorder("clips", "0f000000-0000-4000-8000-0000000000c1"), /^reorder of clips: expected a list of ids, got the string "0f000000-.*"; for one id pass \[id\]$/],
    [() => client.reorder("clips", undefined), /^reorder of clips: expected a list of ids, got undefined$/],
  ];
  for (const [call, message] of calls) {
    let promise;
    assert.doesNotThrow(() => (promise = call()));
    await assert.rejects(promise, (error) => error instanceof TypeError && message.test(error.message));
  }
  assert.deepEqual(socket.take(), [], "nothing was sent");
  assert.equal(client.protocol.nextMid, 1, "no mid was used");
  client.close();
});

test("keys of a patch set to undefined are left out, as JSON.stringify does", (t) => {
  const { client, socket } = joinedClient(t);
  client.patch("scenes", "s1", { heading: "Nightfall", body: undefined }).catch(() => {});
  client.insert("scenes", { id: "s3", heading: undefined, scene_index: 2 }).catch(() => {});
  assert.deepEqual(socket.take(), [
    { type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Nightfall" } },
    { type: "insert", mid: 2, table: "scenes", row: { id: "s3", scene_index: 2 } },
  ]);
  client.close();
});

test("ping after close rejects with ClientClosed, as a mutation does", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  client.close();
  await assert.rejects(client.ping(), (error) => error instanceof ClientClosed && error.code === 1000);
});

test("a mutation whose frame is over maxFrameBytes is refused at call time: nothing queued, no mid used", async (t) => {
  const { client, socket } = joinedClient(t);
  const body = "x".repeat(5_000_000);
  const size = JSON.stringify({ type: "patch", mid: 1, table: "scenes", id: "s1", set: { body } }).length;
  await assert.rejects(client.patch("scenes", "s1", { body }), (error) => {
    assert.ok(error instanceof EditorError);
    assert.equal(error.code, "too_large");
    assert.equal(error.mid, null);
    const shown = size.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    assert.equal(error.message, `too_large: patch of scenes s1: the frame is ${shown} bytes, over the limit of 1,048,576 (maxFrameBytes)`);
    return true;
  });
  assert.deepEqual(socket.take(), []);
  assert.deepEqual(client.unacked, []);
  assert.equal(client.protocol.nextMid, 1);
  client.close();
});

test("maxFrameBytes counts UTF-8 bytes, up to and including the limit", async (t) => {
  // {"type":"insert","mid":1,"table":"clips","row":{"id":"k9","prompt":"…"}} is 71 bytes plus the prompt.
  const { client, socket } = joinedClient(t, { maxFrameBytes: 81 });
  client.insert("clips", { id: "k9", prompt: "é".repeat(5) }).catch(() => {}); // 5 characters, 10 bytes: 81
  await assert.rejects(client.insert("clips", { id: "k9", prompt: "é".repeat(5) + "!" }), /insert into clips of k9: the frame is 82 bytes, over the limit of 81 /);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [1]);
  client.close();
  assert.throws(() => new EditorClient({ url: "ws://127.0.0.1:1", projectId: PROJECT, WebSocket: FakeSocket, maxFrameBytes: 0 }), RangeError);
});

test("a 1009 close says what the code means", () => {
  assert.match(new ClientClosed(1009, "").message, /1009 \(a frame far over the daemon's size limit\)/);
});

test("a call whose mutation stays queued rejects with ClientClosed that says so; other calls do not", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const pending = client.patch("scenes", "s1", { heading: "x" });
  const rtt = client.ping();
  const saved = client.waitSaved(5);
  FakeSocket.last.drop(4401, "token expired");
  const keptMessage = /^connection closed with code 4401 \(unauthorized\): token expired; the mutation is kept and sent again on the next connect\(\)$/;
  await assert.rejects(pending, (error) => error instanceof ClientClosed && error.kept === true && keptMessage.test(error.message));
  for (const other of [rtt, saved]) {
    await assert.rejects(other, (error) => error instanceof ClientClosed && error.kept === false && !/kept/.test(error.message));
  }
  const later = client.patch("scenes", "s2", { heading: "y" });
  await assert.rejects(later, (error) => error instanceof ClientClosed && error.kept === true && keptMessage.test(error.message));
  assert.deepEqual(client.unacked, [1, 2]);
  const again = client.connect();
  FakeSocket.last.open();
  FakeSocket.last.take();
  FakeSocket.last.receive(welcome(0));
  await again;
  assert.deepEqual(FakeSocket.last.take().map((frame) => frame.mid), [1, 2], "both are sent again, as the errors said");
  client.close();
});

test("a mutation dropped unanswered (resendUnacked off) is not said to be kept", async (t) => {
  const client = makeClient(t, { resendUnacked: false });
  client.connect().catch(() => {});
  join();
  const pending = client.patch("scenes", "s1", { heading: "x" });
  FakeSocket.last.drop(1006);
  advance(t, 0.25);
  FakeSocket.last.open();
  FakeSocket.last.receive(welcome(0));
  await assert.rejects(pending, (error) => error instanceof ClientClosed && error.kept === false && !/kept/.test(error.message));
  assert.deepEqual(client.unacked, []);
  client.close();
});

test("after 4409 connect() rejects at once: the client id is another connection's, and a fresh client is needed", async (t) => {
  const client = makeClient(t);
  client.connect().catch(() => {});
  join();
  const pending = client.patch("scenes", "s1", { heading: "x" });
  FakeSocket.last.receive({ type: "error", mid: null, code: "conflict", message: "client id taken over by a newer connection" });
  FakeSocket.last.drop(4409, "client id taken over");
  const takenOver = (error) =>
    error instanceof ClientClosed &&
    error.code === 4409 &&
    error.kept === false &&
    new RegExp(`took client id ${client.clientId} over; this client cannot connect again: make a new EditorClient with a fresh client id`).test(error.message);
  await assert.rejects(pending, takenOver);
  await assert.rejects(client.connect(), takenOver);
  await assert.rejects(client.patch("scenes", "s1", { heading: "y" }), takenOver);
  client.close();
  await assert.rejects(client.connect(), takenOver);
  advance(t, 60);
  assert.equal(FakeSocket.instances.length, 1, "no connection with the taken id");
  assert.equal(client.protocol.nextMid, 2, "the refused call used no mid");
});

test("mutations are paced to the daemon's rate: a burst at once, then the rest in order as tokens come", async (t) => {
  const { client, socket } = joinedClient(t, { mutationRate: 2, mutationBurst: 3 });
  const acks = [1, 2, 3, 4, 5, 6].map((i) => client.patch("scenes", "s1", { duration: i }));
  const rtt = client.ping();
  assert.deepEqual(socket.take().map((frame) => frame.mid), [1, 2, 3], "the burst");
  advance(t, 0.49);
  assert.deepEqual(socket.take(), [], "no token yet");
  advance(t, 0.01);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [4]);
  advance(t, 1);
  const sent = socket.take();
  assert.deepEqual(sent.map((frame) => frame.mid ?? frame.type), [5, 6, "ping"], "the ping keeps its place behind them");
  for (const mid of [1, 2, 3, 4, 5, 6]) socket.receive({ type: "ack", mid, seq: 0 });
  socket.receive({ type: "pong", t: sent[2].t });
  assert.deepEqual((await Promise.all(acks)).map((ack) => ack.mid), [1, 2, 3, 4, 5, 6]);
  await rtt;
  client.close();
});

test("the pace's defaults are the daemon's, 200 per second and bursts of 400, less a reserve of a tenth", (t) => {
  const { client, socket } = joinedClient(t);
  for (let i = 0; i < 362; i += 1) client.flush().catch(() => {});
  assert.equal(socket.take().length, 360, "40 of the burst of 400 are kept for jitter");
  advance(t, 0.004);
  assert.deepEqual(socket.take(), []);
  advance(t, 0.001);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [361]);
  advance(t, 0.005);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [362]);
  client.close();
});

test("mutations resent after a reconnect are paced too, and those never sent count as not sent", (t) => {
  const client = makeClient(t, { mutationRate: 1, mutationBurst: 2 });
  client.connect().catch(() => {});
  join();
  FakeSocket.last.take();
  for (let i = 0; i < 4; i += 1) client.patch("scenes", "s1", { duration: i }).catch(() => {});
  assert.deepEqual(FakeSocket.last.take().map((frame) => frame.mid), [1, 2]);
  FakeSocket.last.drop(1012);
  advance(t, 0.25);
  const socket = FakeSocket.last;
  socket.open();
  assert.deepEqual(socket.take().map((frame) => frame.type), ["hello"], "hello is not held back");
  socket.receive(welcome(0));
  assert.deepEqual(socket.take(), [], "no token left: 2 spent, none back within 0.25 s");
  advance(t, 0.75);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [1]);
  advance(t, 3);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [2, 3]);
  advance(t, 1);
  assert.deepEqual(socket.take().map((frame) => frame.mid), [4]);
  assert.throws(() => makeClientAgain({ mutationRate: 0 }), RangeError);
  assert.throws(() => makeClientAgain({ mutationBurst: 0.5 }), RangeError);
  client.close();
});

function makeClientAgain(options) {
  return new EditorClient({ url: "ws://127.0.0.1:1", projectId: PROJECT, WebSocket: FakeSocket, ...options });
}

/** Let promise callbacks run (the token function's answer) without moving the mocked clock. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("a token function is asked before each hello: the reconnect an hour later sends the refreshed token", async (t) => {
  let current = "first";
  let asked = 0;
  const client = makeClient(t, {
    token: async () => {
      asked += 1;
      return current;
    },
  });
  client.connect().catch(() => {});
  assert.equal(FakeSocket.instances.length, 0, "the socket waits for the token");
  await settle();
  join();
  assert.equal(FakeSocket.last.sent[0].token, "first");
  current = "refreshed";
  FakeSocket.last.drop(1012, "daemon restarting");
  advance(t, 0.25);
  await settle();
  const second = FakeSocket.last;
  assert.equal(FakeSocket.instances.length, 2);
  second.open();
  assert.equal(second.take()[0].token, "refreshed");
  assert.equal(asked, 2);
  client.setToken("fixed");
  second.drop(1006);
  advance(t, 0.5); // the second try was not in sync yet: the delay doubled
  assert.equal(FakeSocket.instances.length, 3, "a string needs no wait");
  FakeSocket.last.open();
  assert.equal(FakeSocket.last.take()[0].token, "fixed", "a string set later is sent as it is, at once");
  client.close();
});

test("a token function that fails or gives no string is a failed connection, tried again after the backoff", async (t) => {
  const answers = [() => Promise.reject(new Error("offline")), () => 42, () => null];
  const client = makeClient(t, { token: () => answers.shift()() });
  const failures = [];
  client.on("disconnected", (event) => failures.push(event.reason));
  client.connect().catch(() => {});
  await settle();
  assert.equal(FakeSocket.instances.length, 0);
  assert.equal(client.status, "reconnecting");
  advance(t, 0.25);
  await settle();
  advance(t, 0.5);
  await settle();
  assert.deepEqual(failures, [
    "the token function failed: offline",
    "the token function failed: EditorClient: options.token: the token function gave number, not a string or null",
  ]);
  assert.equal(FakeSocket.instances.length, 1, "null is a token: anonymous");
  FakeSocket.last.open();
  assert.equal(FakeSocket.last.take()[0].token, null);
  client.close();
});

test("a token that arrives after close() opens nothing", async (t) => {
  let give;
  const client = makeClient(t, { token: () => new Promise((resolve) => (give = resolve)) });
  const joined = client.connect();
  client.close();
  await assert.rejects(joined, (error) => error instanceof ClientClosed && error.code === 1000);
  give("late");
  await settle();
  assert.equal(FakeSocket.instances.length, 0);
  assert.equal(client.status, "closed");
});

test("a connection silent while a mutation waits is pinged, then dropped and made again, and the mutation resent", async (t) => {
  const { client, socket } = joinedClient(t, { livenessTimeout: 10_000 });
  const patched = client.patch("scenes", "s1", { heading: "Stuck" });
  assert.deepEqual(socket.take().map((frame) => frame.type), ["patch"]);
  advance(t, 9);
  assert.deepEqual(socket.take(), [], "not yet");
  advance(t, 1);
  const [ping] = socket.take();
  assert.equal(ping.type, "ping", "silent for the timeout: a ping");
  assert.equal(client.status, "live");
  advance(t, 10);
  assert.equal(socket.closedWith.code, 1000, "silent for as long again: the connection is given up");
  assert.equal(client.status, "reconnecting");
  assert.match(client.lastClose?.reason ?? "", /no answer from syncd for 20 s/);
  advance(t, 1);
  const next = FakeSocket.last;
  assert.notEqual(next, socket);
  next.open();
  next.receive(welcome()); // resumed: nothing was missed
  const resent = next.take().filter((frame) => frame.type === "patch");
  assert.deepEqual(resent.map((frame) => [frame.mid, frame.set]), [[1, { heading: "Stuck" }]]);
  next.receive({ type: "ack", mid: 1, seq: 1 });
  assert.deepEqual(await patched, { mid: 1, seq: 1 });
  client.close();
});

test("any frame from the daemon counts as an answer: a busy connection is not dropped", async (t) => {
  const { client, socket } = joinedClient(t, { livenessTimeout: 10_000 });
  const patched = client.patch("scenes", "s1", { heading: "Slow" });
  socket.take();
  advance(t, 10);
  assert.equal(socket.take()[0].type, "ping");
  advance(t, 5);
  socket.receive({ type: "pong", t: "anything" });
  advance(t, 9);
  assert.equal(socket.closedWith, null, "heard from 9 s ago: kept");
  assert.equal(client.status, "live");
  socket.receive({ type: "ack", mid: 1, seq: 0 });
  await patched;
  client.close();
});

test("a connection with nothing to send is watched too: a silent one is made again, an answering one kept", async (t) => {
  const { client, socket } = joinedClient(t, { livenessTimeout: 10_000 });
  socket.take();
  advance(t, 10);
  assert.deepEqual(socket.take().map((frame) => frame.type), ["ping"], "quiet for the timeout: a ping");
  socket.receive({ type: "pong", t: "anything" });
  advance(t, 9);
  assert.deepEqual(socket.take(), [], "heard from 9 s ago: no ping");
  advance(t, 1);
  assert.deepEqual(socket.take().map((frame) => frame.type), ["ping"]);
  advance(t, 10);
  assert.equal(socket.closedWith?.code, 1000, "no answer to the ping: the connection is given up");
  assert.equal(client.status, "reconnecting");
  advance(t, 1);
  assert.notEqual(FakeSocket.last, socket, "and made again, to catch up with what it missed");
  client.close();
});
