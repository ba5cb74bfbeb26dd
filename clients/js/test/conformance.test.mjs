// Runs every case of clients/conformance against the TypeScript ClientProtocol (see its README),
// as tests/client/test_conformance.py runs them against the Python one.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { ClientProtocol } from "../dist/index.js";

const CASES_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "conformance");
const DEFAULTS = {
  project_id: "p1",
  client_id: "c0ffee00-0000-4000-8000-000000000001",
  token: null,
  resume: true,
  resend_unacked: true,
  first_mid: 1,
  jitter: 0,
};
const CALLS = {
  connection_made: (c) => c.connectionMade(),
  connection_lost: (c, a) => c.connectionLost(a.code, a.reason ?? "", a.now ?? 0),
  connection_failed: (c, a) => c.connectionFailed(a.reason, a.now),
  disconnect: (c) => c.disconnect(),
  close: (c) => c.close(),
  patch: (c, a) => c.patch(a.table, a.id, a.set),
  insert: (c, a) => c.insert(a.table, a.row),
  delete: (c, a) => c.delete(a.table, a.id),
  reorder: (c, a) => c.reorder(a.table, a.ids),
  flush: (c) => c.flush(),
  mutation: (c, a) => c.mutation(a.frame),
  ping: (c, a) => c.ping(a.t),
  resend_unacked: (c) => c.resendUnacked(),
};
const STEP_KEYS = new Set(["do", "args", "receive", "receive_text", "sent", "events", "returns", "view", "state"]);
const EVENT_KINDS = [
  "joined",
  "view_replaced",
  "change_applied",
  "acknowledged",
  "rejected",
  "server_error",
  "unanswered",
  "saved_up_to",
  "presence_changed",
  "noticed",
  "pong_received",
  "resyncing",
  "violation",
  "disconnected",
];

function loadFiles() {
  return readdirSync(CASES_DIR)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => ({ name, cases: JSON.parse(readFileSync(join(CASES_DIR, name), "utf8")) }));
}

function makeClient(settings) {
  const unknown = Object.keys(settings).filter((key) => !(key in DEFAULTS));
  assert.deepEqual(unknown, [], "unknown client settings");
  const o = { ...DEFAULTS, ...settings };
  return new ClientProtocol(o.project_id, o.client_id, {
    token: o.token,
    resume: o.resume,
    resendUnacked: o.resend_unacked,
    firstMid: o.first_mid,
    jitter: () => o.jitter,
    reconnectInitial: 0.5,
    reconnectMax: 30,
  });
}

function stateOf(client) {
  return {
    phase: client.phase,
    epoch: client.epoch,
    seq: client.seq,
    saved_seq: client.savedSeq,
    acked_seq: client.ackedSeq,
    session: client.session,
    editors: client.editors,
    next_mid: client.nextMid,
    unacked: client.unacked,
    resyncs: client.resyncs,
    resume_point: client.resumePoint(),
  };
}

/** Only the listed keys of `got`, a missing one as null (as the Python runner's dict.get does). */
function pick(got, want) {
  return Object.fromEntries(Object.keys(want).map((key) => [key, got[key] === undefined ? null : got[key]]));
}

function runStep(client, step) {
  const unknown = Object.keys(step).filter((key) => !STEP_KEYS.has(key));
  assert.deepEqual(unknown, [], "unknown step keys");
  const inputs = ["do", "receive", "receive_text"].filter((key) => key in step);
  assert.equal(inputs.length, 1, `a step needs exactly one input, got ${inputs}`);
  if ("receive" in step) return client.receiveFrame(structuredClone(step.receive));
  if ("receive_text" in step) return client.receiveText(step.receive_text);
  const call = CALLS[step.do];
  assert.ok(call, `unknown call ${step.do}`);
  return call(client, structuredClone(step.args ?? {}));
}

function checkStep(client, step, returned, where) {
  assert.deepStrictEqual(client.takeFrames(), step.sent ?? [], `${where}: frames sent`);
  const events = client.takeEvents();
  const expected = step.events ?? [];
  assert.deepStrictEqual(
    events.map((e) => e.type),
    expected.map((e) => e.type),
    `${where}: events ${JSON.stringify(events)}`,
  );
  expected.forEach((want, index) => {
    assert.deepStrictEqual(pick(events[index], want), want, `${where}: event ${JSON.stringify(events[index])}`);
  });
  if ("returns" in step) assert.deepStrictEqual(returned, step.returns, `${where}: returned`);
  if ("view" in step) {
    const view = client.view.asData();
    assert.deepStrictEqual(pick(view, step.view), step.view, `${where}: view`);
  }
  if ("state" in step) assert.deepStrictEqual(pick(stateOf(client), step.state), step.state, `${where}: state`);
}

const files = loadFiles();

for (const { name, cases } of files) {
  describe(name, () => {
    for (const kase of cases) {
      test(kase.name, () => {
        const client = makeClient(kase.client ?? {});
        kase.steps.forEach((step, index) => {
          const where = `step ${index + 1} (${step.do ?? Object.keys(step)[0]})`;
          const returned = runStep(client, step);
          checkStep(client, step, returned, where);
        });
      });
    }
  });
}

test("the cases cover every event kind and every call", () => {
  const steps = files.flatMap(({ cases }) => cases.flatMap((kase) => kase.steps));
  const kinds = new Set(steps.flatMap((step) => (step.events ?? []).map((event) => event.type)));
  for (const kind of EVENT_KINDS) assert.ok(kinds.has(kind), `no case reports ${kind}`);
  const calls = new Set(steps.filter((step) => "do" in step).map((step) => step.do));
  assert.deepStrictEqual([...calls].sort(), Object.keys(CALLS).sort());
});

test("a runner that checks nothing would be caught: a wrong expectation fails", () => {
  const client = makeClient({});
  client.connectionMade();
  assert.throws(() => checkStep(client, { do: "connection_made", sent: [] }, undefined, "probe"));
});
