// A WebSocket stand-in for unit tests: the test plays the server, frame by frame. The end-to-end
// tests use the real daemon; these pin down timing and close codes exactly.

export class FakeSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.binaryType = "blob";
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.instances.push(this);
  }

  static reset() {
    FakeSocket.instances = [];
  }

  static get last() {
    return FakeSocket.instances.at(-1);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = "") {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // ---- the server's side ----

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Frames sent since the last call. */
  take() {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

export const PROJECT = "0f000000-0000-4000-8000-000000000001";

export function snapshot(seq = 0, epoch = "e1", extra = {}) {
  return {
    type: "snapshot",
    epoch,
    seq,
    project: { id: PROJECT, title: "The Lighthouse", script: "", status: "draft", aspect_ratio: "16:9", settings: {} },
    scenes: [
      { id: "s1", project_id: PROJECT, scene_index: 0, heading: "Dusk", body: "", duration: 6, voice_id: null },
      { id: "s2", project_id: PROJECT, scene_index: 1, heading: "The lamp", body: "", duration: 7.5, voice_id: null },
    ],
    clips: [{ id: "k1", project_id: PROJECT, scene_id: "s1", order_index: 0, prompt: "stairs", metadata: {} }],
    saved_seq: 0,
    ...extra,
  };
}

export function welcome(seq = 0, epoch = "e1", session = "c1") {
  return { type: "welcome", protocol: 1, project_id: PROJECT, epoch, seq, session };
}

/** Open the last socket and bring the client in sync with a snapshot. */
export function join(socket = FakeSocket.last, seq = 0, epoch = "e1") {
  socket.open();
  socket.receive(welcome(seq, epoch));
  socket.receive(snapshot(seq, epoch));
}

/**
 * A tiny in-memory syncd for tests of the calls on top of the client: projects by id, hello with a
 * snapshot (or 4404), mutations applied as changes and acknowledged, flush answered with `saved`.
 * Only what those tests need; the real daemon is tested end to end.
 */
export class FakeSyncd {
  constructor() {
    this.projects = new Map();
    this.seq = 0;
    /** Every mutation it got, with the client id of its connection. */
    this.received = [];
    /** While true, mutations reach it and nothing happens: no change, no answer (a network gone silent). */
    this.silent = false;
    /** While an array, the answers wait in it (`answer()` sends them). */
    this.waiting = null;
  }

  /** Send the answers that wait, in order, and answer at once from now on. */
  answer() {
    const waiting = this.waiting ?? [];
    this.waiting = null;
    for (const send of waiting) send();
  }

  /** A WebSocket constructor whose sockets this server answers. */
  get WebSocket() {
    const server = this;
    return class extends FakeSocket {
      constructor(url) {
        super(url);
        queueMicrotask(() => this.open());
      }

      send(text) {
        super.send(text);
        server.handle(this, JSON.parse(text));
      }
    };
  }

  addProject(project, scenes = [], clips = []) {
    this.projects.set(project.id, { project, scenes: new Map(scenes.map((r) => [r.id, r])), clips: new Map(clips.map((r) => [r.id, r])) });
  }

  handle(socket, frame) {
    const reply = (f) => (this.waiting !== null && frame.type !== "hello" ? this.waiting.push(() => socket.receive(f)) : queueMicrotask(() => socket.receive(f)));
    if (frame.type === "hello") {
      const p = this.projects.get(frame.project_id);
      socket.projectId = frame.project_id;
      socket.clientId = frame.client_id;
      if (p === undefined) {
        reply({ type: "error", mid: null, code: "not_found", message: "no such project" });
        queueMicrotask(() => socket.drop(4404, "project not found"));
        return;
      }
      reply({ type: "welcome", protocol: 1, project_id: frame.project_id, epoch: "fake", seq: this.seq, session: "f1" });
      reply({ type: "snapshot", epoch: "fake", seq: this.seq, project: p.project, scenes: [...p.scenes.values()], clips: [...p.clips.values()], saved_seq: this.seq });
      return;
    }
    if (this.silent || frame.type === "ping") return;
    this.received.push({ client_id: socket.clientId, ...frame });
    const p = this.projects.get(socket.projectId);
    const change = (table, op, id, body) => {
      this.seq += 1;
      reply({ type: "change", seq: this.seq, table, op, id, ...body, origin: "editor", client_id: null, mid: frame.mid });
    };
    if (frame.type === "insert") {
      const row = { ...frame.row, project_id: socket.projectId };
      p[frame.table].set(row.id, row);
      change(frame.table, "insert", row.id, { row });
    } else if (frame.type === "patch") {
      if (frame.table === "projects") Object.assign(p.project, frame.set);
      else Object.assign(p[frame.table].get(frame.id), frame.set);
      change(frame.table, "update", frame.id, { set: frame.set });
    } else if (frame.type === "delete") {
      p[frame.table].delete(frame.id);
      change(frame.table, "delete", frame.id, {});
    }
    if ("mid" in frame) reply({ type: "ack", mid: frame.mid, seq: this.seq });
    if (frame.type === "flush") reply({ type: "saved", seq: this.seq, at: "2026-12-01T00:00:00.000Z" });
  }
}

/** Web Storage in memory, with `key` and `length` as the browser's, and a log of the writes. */
export class MemoryStorage {
  items = new Map();
  log = [];
  get length() {
    return this.items.size;
  }
  key(index) {
    return [...this.items.keys()][index] ?? null;
  }
  getItem(key) {
    return this.items.get(key) ?? null;
  }
  setItem(key, value) {
    this.log.push(["set", key]);
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.log.push(["remove", key]);
    this.items.delete(key);
  }
}
