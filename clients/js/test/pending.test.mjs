// withPending: the server's view with the client's unacknowledged mutations on top.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ProjectView, withPending } from "../dist/index.js";
import { PROJECT, snapshot } from "./fake.mjs";

function view() {
  const v = new ProjectView();
  const s = snapshot();
  v.reset(s.project, s.scenes, s.clips);
  v.scenes.set("s3", { id: "s3", project_id: PROJECT, scene_index: 2, heading: "Homeward" });
  return v;
}

const ids = (rows) => rows.map((row) => row.id);

test("no pending mutation: the view's own rows, in order", () => {
  const v = view();
  const data = withPending(v, []);
  assert.deepEqual(data, v.asData());
  assert.equal(data.scenes[0], v.scenes.get("s1"));
});

test("patches apply in order over the server's row; rows no mutation touches keep their objects", () => {
  const v = view();
  const data = withPending(v, [
    { type: "patch", mid: 1, table: "scenes", id: "s1", set: { heading: "Dus" } },
    { type: "patch", mid: 2, table: "scenes", id: "s1", set: { heading: "Dusk, seen" } },
    { type: "patch", mid: 3, table: "projects", id: PROJECT, set: { title: "Lighthouse II" } },
  ]);
  assert.equal(data.scenes[0].heading, "Dusk, seen");
  assert.equal(data.scenes[0].duration, 6, "the fields not patched are the server's");
  assert.equal(data.project.title, "Lighthouse II");
  assert.equal(data.scenes[1], v.scenes.get("s2"));
  assert.equal(v.scenes.get("s1").heading, "Dusk", "the view itself is left alone");
  assert.equal(v.project.title, "The Lighthouse");
});

test("an insert adds its row, a delete removes one, a patch of a row not there does nothing", () => {
  const data = withPending(view(), [
    { type: "insert", mid: 1, table: "clips", row: { id: "k2", scene_id: "s1", order_index: 1, prompt: "beam" } },
    { type: "delete", mid: 2, table: "scenes", id: "s2" },
    { type: "patch", mid: 3, table: "scenes", id: "s2", set: { heading: "gone" } },
    { type: "flush", mid: 4 },
  ]);
  assert.deepEqual(ids(data.clips), ["k1", "k2"]);
  assert.deepEqual(ids(data.scenes), ["s1", "s3"]);
});

test("a reorder puts the listed rows first and the others after them in their order, as the daemon does", () => {
  const data = withPending(view(), [{ type: "reorder", mid: 1, table: "scenes", ids: ["s3"] }]);
  assert.deepEqual(ids(data.scenes), ["s3", "s1", "s2"]);
  assert.deepEqual(data.scenes.map((row) => row.scene_index), [0, 1, 2]);
});

test("a reorder naming a row the view does not hold changes nothing: the daemon refuses it whole", () => {
  const v = view();
  const data = withPending(v, [{ type: "reorder", mid: 1, table: "scenes", ids: ["s3", "nope"] }]);
  assert.deepEqual(ids(data.scenes), ["s1", "s2", "s3"]);
  assert.equal(data.scenes[0], v.scenes.get("s1"));
});
