// Unit tests of the sans-I/O parts beyond the conformance cases: frames, the view, the backoff, rows.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Backoff,
  BadServerFrame,
  canonicalJson,
  ClientProtocol,
  encode,
  FINAL_CLOSE_CODES,
  findLocalProject,
  parse,
  ProjectView,
  toCamel,
  toSnake,
  editable,
} from "../dist/index.js";

test("the final close codes are the ones of syncd/wire.py", () => {
  assert.deepEqual([...FINAL_CLOSE_CODES].sort(), [1000, 1002, 1009, 4401, 4403, 4404, 4409]);
});

test("parse takes text and UTF-8 bytes and refuses what is not a JSON object", () => {
  assert.deepEqual(parse('{"type":"pong","t":1}'), { type: "pong", t: 1 });
  assert.deepEqual(parse(new TextEncoder().encode('{"type":"x"}')), { type: "x" });
  assert.throws(() => parse("[1]"), BadServerFrame);
  assert.throws(() => parse("{"), BadServerFrame);
  assert.throws(() => parse(new Uint8Array([0xff, 0xfe])), BadServerFrame);
});

test("encode refuses what JSON cannot carry, naming where", () => {
  assert.equal(encode({ type: "ping", t: [1, "a", null] }), '{"type":"ping","t":[1,"a",null]}');
  assert.throws(() => encode({ type: "ping", t: NaN }), /frame\.t: NaN/);
  assert.throws(() => encode({ type: "ping", t: { a: undefined } }), /frame\.t\.a: undefined cannot be written as JSON/);
  assert.throws(() => encode({ type: "ping", t: new Map() }), /Map/);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => encode({ type: "ping", t: cycle }), /cycle/);
});

test("a mutation JSON cannot carry uses no mid", () => {
  const client = new ClientProtocol("p1", "c1");
  assert.throws(() => client.patch("scenes", "s1", { duration: Infinity }), TypeError);
  assert.equal(client.nextMid, 1);
  assert.deepEqual(client.unacked, []);
});

test("restored mutations keep their mids, are sent once in sync, and the next mid follows them", () => {
  const client = new ClientProtocol("p1", "c1");
  assert.throws(() => client.restore([{ type: "flush", mid: 0 }]), /frames\[0\]\.mid: expected a whole number from 1 on, got 0/);
  assert.throws(() => client.restore([{ type: "flush", mid: 5 }, { type: "flush", mid: 5 }]), /frames\[1\]\.mid/);
  assert.throws(() => client.restore([{ type: "flush" }]), /frames\[0\]\.mid/);
  assert.deepEqual(client.unacked, [], "a refused list keeps nothing");
  client.restore([{ type: "patch", mid: 3, table: "scenes", id: "s1", set: { heading: "A" } }, { type: "flush", mid: 7 }]);
  assert.deepEqual(client.unacked, [3, 7]);
  assert.equal(client.nextMid, 8);
  assert.throws(() => client.restore([]), /only on a client that has not connected or sent anything yet/);
  client.connectionMade();
  client.receiveFrame({ type: "welcome", protocol: 1, project_id: "p1", epoch: "e", seq: 0, session: "s" });
  client.receiveFrame({ type: "snapshot", epoch: "e", seq: 0, project: { id: "p1" }, scenes: [], clips: [], saved_seq: 0 });
  client.flush();
  assert.deepEqual(client.takeFrames().map((frame) => [frame.type, frame.mid]), [["hello", undefined], ["patch", 3], ["flush", 7], ["flush", 8]]);
  client.receiveFrame({ type: "ack", mid: 3, seq: 0 });
  assert.deepEqual(client.unacked, [7, 8]);
});

test("canonical JSON ignores key order, so a pong matches its ping", () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
  const client = new ClientProtocol("p1", "c1");
  client.connectionMade();
  client.receiveFrame({ type: "welcome", protocol: 1, project_id: "p1", epoch: "e", seq: 0, session: "s" });
  client.receiveFrame({ type: "snapshot", epoch: "e", seq: 0, project: { id: "p1" }, scenes: [], clips: [], saved_seq: 0 });
  client.takeEvents();
  client.ping({ x: 1, y: 2 });
  client.receiveFrame({ type: "pong", t: { y: 2, x: 1 } });
  assert.deepEqual(client.takeEvents(), [{ type: "pong_received", t: { y: 2, x: 1 } }]);
});

test("the view orders rows by index then id, and replaces a changed row with a new object", () => {
  const view = new ProjectView();
  view.reset({ id: "p" }, [{ id: "b", scene_index: 1 }, { id: "c", scene_index: 0 }, { id: "a", scene_index: 1 }], []);
  assert.deepEqual(view.ordered("scenes").map((row) => row.id), ["c", "a", "b"]);
  const before = view.scenes.get("a");
  assert.equal(view.apply({ table: "scenes", op: "update", id: "a", set: { heading: "x" } }), true);
  assert.notEqual(view.scenes.get("a"), before);
  assert.equal(before.heading, undefined, "the old row is left as it was");
  assert.equal(view.apply({ table: "clips", op: "update", id: "nope", set: {} }), false);
});

test("the backoff doubles to its cap and scales by the jitter into [1/2, 1)", () => {
  let j = 0;
  const backoff = new Backoff(0.5, 4, () => j);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => backoff.nextDelay()), [0.25, 0.5, 1, 2, 2]);
  backoff.reset();
  j = 0.999;
  assert.ok(Math.abs(backoff.nextDelay() - 0.49975) < 1e-9);
  assert.throws(() => new Backoff(0, 1, Math.random), RangeError);
});

test("rows convert between the frontend's camelCase and the columns' snake_case", () => {
  assert.deepEqual(toSnake({ aspectRatio: "9:16", trim_end: 2, metadata: { someKey: 1 } }), {
    aspect_ratio: "9:16",
    trim_end: 2,
    metadata: { someKey: 1 },
  });
  assert.deepEqual(toCamel({ aspect_ratio: "1:1", file_url: null }), { aspectRatio: "1:1", fileUrl: null });
  assert.deepEqual(editable("clips", { id: "x", project_id: "p", prompt: "a", version: 3, order_index: 1 }), {
    prompt: "a",
    order_index: 1,
  });
});

test("a project of the Redux state is found by id, camelCase, rows in their order", () => {
  const state = {
    projects: [
      { id: "other", title: "Other" },
      {
        id: "p1",
        title: "Mine",
        aspect_ratio: "9:16",
        scenes: [{ id: "s2", sceneIndex: 1 }, { id: "s1", scene_index: 0 }],
        clips: [{ id: "k1", prompt: "a" }, { id: "k2", prompt: "b" }],
      },
    ],
  };
  const project = findLocalProject(state, "p1");
  assert.equal(project.aspectRatio, "9:16");
  assert.deepEqual(project.scenes.map((s) => [s.id, s.sceneIndex]), [["s1", 0], ["s2", 1]]);
  assert.deepEqual(project.clips.map((c) => [c.id, c.orderIndex]), [["k1", 0], ["k2", 1]]);
  assert.equal(findLocalProject(state, "missing"), null);
  assert.equal(findLocalProject({ projects: { p1: state.projects[1] } }, "p1").title, "Mine");
  assert.equal(findLocalProject(null, "p1"), null);
});

test("the core is sans-I/O: no sockets, timers, clocks or fetch in its modules", async () => {
  const { readFileSync } = await import("node:fs");
  const core = ["protocol", "view", "events", "frames", "wire", "backoff", "pacing"];
  const forbidden = /\b(WebSocket|setTimeout|setInterval|Date\.now|new Date|performance|fetch|process\.)\b|from "\.\/(client|http|studio|store|react)\.js"/;
  const offenders = core.filter((name) =>
    forbidden.test(readFileSync(new URL(`../src/${name}.ts`, import.meta.url), "utf8").replace(/\/\*\*[\s\S]*?\*\/|\/\/.*$/gm, "")),
  );
  assert.deepEqual(offenders, []);
  assert.ok(forbidden.test(readFileSync(new URL("../src/client.ts", import.meta.url), "utf8")), "the check sees the I/O layer");
});
