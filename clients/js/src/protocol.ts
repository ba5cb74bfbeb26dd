/**
 * `ClientProtocol`: the editor side of the syncd protocol as a state machine without I/O.
 *
 * The same machine as `syncd.client.ClientProtocol` in Python, following "Client rules" (§16) of
 * docs/protocol.md; the cases in `clients/conformance` pin it down step by step, and both clients
 * run them. Nothing here touches a socket, a timer or a clock. The caller feeds it what happens,
 * then acts on what it returns:
 *
 * - inputs: `connectionMade`, `receiveFrame` (or `receiveText`), `connectionLost`,
 *   `connectionFailed`, `disconnect`, `close`, and the local calls (`patch`, `insert`, `delete`,
 *   `reorder`, `flush`, `mutation`, `ping`, `resendUnacked`); time comes in as `now` (seconds);
 * - outputs: `takeFrames()` (the frames to write, in order) and `takeEvents()` (`ClientEvent`s).
 */

import { Backoff } from "./backoff.js";
import { EditorError } from "./errors.js";
import type { ClientEvent, Joined, SavedUpTo } from "./events.js";
import {
  BadServerFrame,
  checkChange,
  checkJson,
  describeMutation,
  get,
  getOptionalInt,
  getRows,
  parse,
  pingKey,
  utf8Length,
  withCommas,
  type Frame,
  type Row,
} from "./frames.js";
import { ProjectView } from "./view.js";
import {
  CLOSE_ABNORMAL,
  FINAL_CLOSE_CODES,
  PROTOCOL_VERSION,
  SIDE_TABLES,
  type ChildTable,
  type Table,
} from "./wire.js";

/**
 * `idle`: no connection (none yet, or lost and a reconnect may follow); `hello`: hello sent, no
 * welcome yet; `syncing`: welcome received, the snapshot or the missed changes still coming; `live`:
 * in sync, mutations flow; `closed`: closed for good (by the caller, a final close code or a protocol
 * violation) until the caller connects again.
 */
export type Phase = "idle" | "hello" | "syncing" | "live" | "closed";

/** Connections in a row whose opening stream did not line up before that is a protocol violation. */
export const MAX_SYNC_ATTEMPTS = 3;
/** Gap recoveries without a snapshot or an in-order change in between before that is a violation. */
export const MAX_RESYNCS_IN_A_ROW = 3;
export const RECONNECT_INITIAL = 0.5;
export const RECONNECT_MAX = 30;
/** The daemon's default `gateway.max_frame_bytes` (protocol §11). */
export const MAX_FRAME_BYTES = 1_048_576;

/** The settings of a `ClientProtocol`. */
export interface ProtocolOptions {
  /** The access token sent in `hello` (null: anonymous); may be replaced before a reconnect. */
  token?: string | null;
  /** Whether `hello` resumes from the last applied seq (default true). */
  resume?: boolean;
  /** Whether mutations sent on a lost connection are sent again once the next one is in sync (default true). */
  resendUnacked?: boolean;
  /** The mid of the first mutation (default 1). */
  firstMid?: number;
  /**
   * The largest mutation frame, in bytes of UTF-8, that a call may make (default 1 MiB, the daemon's
   * `gateway.max_frame_bytes`); a larger one is refused with `EditorError` `too_large`. Match it to
   * a daemon configured otherwise.
   */
  maxFrameBytes?: number;
  /** Returns a number in [0, 1) for the reconnect backoff (default `Math.random`). */
  jitter?: () => number;
  /** Seconds before the first reconnect after a lost connection, before jitter (default 0.5). */
  reconnectInitial?: number;
  /** The cap of the reconnect delay in seconds (default 30). */
  reconnectMax?: number;
}

/** A mutation without an answer; `sent` once it went out on a connection. */
interface Unacked {
  frame: Frame;
  sent: boolean;
}

/** One editor's state for one project: the view, the stream position, mids and unacked mutations. */
export class ClientProtocol {
  token: string | null;
  resume: boolean;
  resendOnReconnect: boolean;
  readonly maxFrameBytes: number;
  readonly view = new ProjectView();
  /** Epoch of the stream the view follows; null before the first snapshot. */
  epoch: string | null = null;
  /** Seq of the last change applied to the view. */
  seq = 0;
  /** Highest seq the server reported saved. */
  savedSeq = 0;
  lastSaved: SavedUpTo | null = null;
  /** Highest seq of an ack received in the current epoch. */
  ackedSeq = 0;
  session: string | null = null;
  editors: Frame[] = [];
  /** How many editors the last `presence` counted (`editors` may list only the first). */
  editorCount = 0;
  /** How many times a gap or a diverged view made the client leave a live connection. */
  resyncs = 0;
  phase: Phase = "idle";

  private nextMidValue: number;
  private readonly unackedMutations = new Map<number, Unacked>();
  private readonly pings = new Map<string, Frame>();
  private outbox: Array<[Frame, number | null]> = [];
  private events: ClientEvent[] = [];
  private readonly backoff: Backoff;
  private sentResume: [string, number] | null = null;
  private welcome: Joined | null = null;
  private resumable = false;
  private snapshotNeeded = false;
  private syncAttempts = 0;
  private resyncsInARow = 0;

  /**
   * @param projectId the project to open.
   * @param clientId this editor's id (a UUID string), the same across reconnects.
   */
  constructor(
    readonly projectId: string,
    readonly clientId: string,
    options: ProtocolOptions = {},
  ) {
    this.token = options.token ?? null;
    this.resume = options.resume ?? true;
    this.resendOnReconnect = options.resendUnacked ?? true;
    this.nextMidValue = options.firstMid ?? 1;
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    if (!Number.isSafeInteger(this.maxFrameBytes) || this.maxFrameBytes < 1) {
      throw new RangeError(`maxFrameBytes must be a positive whole number of bytes, got ${options.maxFrameBytes}`);
    }
    this.backoff = new Backoff(
      options.reconnectInitial ?? RECONNECT_INITIAL,
      options.reconnectMax ?? RECONNECT_MAX,
      options.jitter ?? Math.random,
    );
  }

  // ---- outputs ---------------------------------------------------------------------------------

  /**
   * The frames to write, in order; they are forgotten here.
   *
   * @param maxMutations take frames up to, not including, the mutation past this many (for a caller
   *   that paces mutations); the rest stay queued, in order, and still count as not sent if the
   *   connection is lost before they are taken.
   */
  takeFrames(maxMutations = Infinity): Frame[] {
    let end = 0;
    let mutations = 0;
    for (; end < this.outbox.length; end += 1) {
      if (this.outbox[end]![1] !== null) {
        if (mutations >= maxMutations) break;
        mutations += 1;
      }
    }
    const frames = this.outbox.slice(0, end).map(([frame]) => frame);
    this.outbox = this.outbox.slice(end);
    return frames;
  }

  /** How many frames wait to be taken. */
  get queuedFrames(): number {
    return this.outbox.length;
  }

  /** What happened since the last call, in order; it is forgotten here. */
  takeEvents(): ClientEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** The mid the next mutation will get. */
  get nextMid(): number {
    return this.nextMidValue;
  }

  /** Mids of the mutations that have no answer yet, in mid order. */
  get unacked(): number[] {
    return [...this.unackedMutations.keys()];
  }

  /** The frame of an unanswered mutation, or undefined. */
  unackedFrame(mid: number): Frame | undefined {
    return this.unackedMutations.get(mid)?.frame;
  }

  /** The `[epoch, seq]` the next `hello` resumes from, or null when it asks for a snapshot. */
  resumePoint(): [string, number] | null {
    if (this.resume && this.epoch !== null && !this.snapshotNeeded) return [this.epoch, this.seq];
    return null;
  }

  // ---- the connection --------------------------------------------------------------------------

  /**
   * A new connection is open: queue its `hello`.
   *
   * @throws Error a connection is already in use (phase `hello`, `syncing` or `live`).
   */
  connectionMade(): void {
    if (this.phase !== "idle" && this.phase !== "closed") {
      throw new Error(`connectionMade() while ${this.phase}; the old connection is still in use`);
    }
    const resume = this.resumePoint();
    this.sentResume = resume;
    this.welcome = null;
    this.resumable = false;
    this.phase = "hello";
    const hello: Frame = {
      type: "hello",
      protocol: PROTOCOL_VERSION,
      project_id: this.projectId,
      client_id: this.clientId,
      token: this.token,
      resume: resume !== null ? { epoch: resume[0], seq: resume[1] } : null,
    };
    this.outbox.push([hello, null]);
  }

  /**
   * The connection ended without the client leaving it; reports `disconnected`.
   *
   * A connection the client already left (after `resyncing`, `violation` or `close`) reports
   * nothing: call this only for the connection in use.
   *
   * @param code the close code (1006 when the connection dropped without one).
   * @param reason the close reason.
   * @param now the caller's clock in seconds, for `retry_at`.
   */
  connectionLost(code: number, reason = "", now = 0): void {
    if (this.phase === "idle" || this.phase === "closed") return;
    this.leave();
    this.pings.clear();
    this.syncAttempts = 0;
    const final = FINAL_CLOSE_CODES.has(code);
    this.phase = final ? "closed" : "idle";
    const retryAt = final ? null : now + this.backoff.nextDelay();
    this.events.push({ type: "disconnected", code, reason, final, retry_at: retryAt });
  }

  /** A connection could not be opened; reports `disconnected` (1006) with the next retry time. */
  connectionFailed(reason: string, now: number): void {
    if (this.phase === "closed") return;
    const retryAt = now + this.backoff.nextDelay();
    this.events.push({ type: "disconnected", code: CLOSE_ABNORMAL, reason, final: false, retry_at: retryAt });
  }

  /** The caller leaves the connection on purpose, to open another: no event, everything is kept. */
  disconnect(): void {
    if (this.phase === "idle" || this.phase === "closed") return;
    this.leave();
    this.syncAttempts = 0;
    this.phase = "idle";
  }

  /** The caller closes the client: leave the connection, forget pings; unacked mutations stay. */
  close(): void {
    this.leave();
    this.pings.clear();
    this.syncAttempts = 0;
    this.phase = "closed";
  }

  // ---- local calls -----------------------------------------------------------------------------

  /**
   * Give `frame` the next mid and keep it until it is answered; return the frame as sent.
   *
   * It is queued for `takeFrames` at once when live, else when the next connection is in sync.
   * Nothing in the frame is checked but that JSON can carry it and that it fits `maxFrameBytes`.
   *
   * @throws TypeError the frame cannot be written as JSON (no mid is used).
   * @throws EditorError `too_large`: the frame is over `maxFrameBytes` (no mid is used). Sent, the
   *   daemon would refuse it, or close the connection (1009) far over its limit, and since it would
   *   stay unacknowledged, every later connection would send it again and be closed again.
   */
  mutation(frame: Frame): Frame {
    const mid = this.nextMidValue;
    const body: Frame = { type: frame["type"] ?? null, mid };
    for (const [key, value] of Object.entries(frame)) {
      if (key !== "type" && key !== "mid") body[key] = value;
    }
    // Named by the frame's type, as the daemon names a field (`patch.set.duration`, §9).
    checkJson(body, typeof body["type"] === "string" ? body["type"] : "frame");
    const size = utf8Length(JSON.stringify(body));
    if (size > this.maxFrameBytes) {
      throw new EditorError(
        "too_large",
        `${describeMutation(body)}: the frame is ${withCommas(size)} bytes, over the limit of ${withCommas(this.maxFrameBytes)} (maxFrameBytes)`,
        null,
      );
    }
    this.nextMidValue = mid + 1;
    const entry: Unacked = { frame: body, sent: false };
    this.unackedMutations.set(mid, entry);
    if (this.phase === "live") {
      entry.sent = true;
      this.outbox.push([body, mid]);
    }
    return body;
  }

  /**
   * Keep mutations that an earlier instance of this client id sent and had no answer for (a tab that
   * was closed), each with its own mid, to be sent once a connection is in sync: a mid syncd already
   * accepted is acknowledged again and applied zero times (§7), the others are applied. The next
   * mutation's mid follows the last one. Only before anything else was sent.
   *
   * @throws TypeError a frame without a whole mid, mids not rising, or a mutation already made.
   */
  restore(frames: Frame[]): void {
    if (this.unackedMutations.size > 0 || this.phase !== "idle") {
      throw new TypeError("restore: only on a client that has not connected or sent anything yet");
    }
    let next = this.nextMidValue;
    const kept: Array<[number, Frame]> = [];
    frames.forEach((frame, index) => {
      const mid = frame?.["mid"];
      if (typeof mid !== "number" || !Number.isSafeInteger(mid) || mid < next) {
        throw new TypeError(`restore: frames[${index}].mid: expected a whole number from ${next} on, got ${JSON.stringify(mid)}`);
      }
      checkJson(frame, `restore: frames[${index}]`);
      kept.push([mid, { ...frame }]);
      next = mid + 1;
    });
    for (const [mid, frame] of kept) this.unackedMutations.set(mid, { frame, sent: false });
    this.nextMidValue = next;
  }

  /** A `patch` of one row's fields; see `mutation`. */
  patch(table: Table, id: string, set: Record<string, unknown>): Frame {
    return this.mutation({ type: "patch", table, id, set: { ...set } });
  }

  /** An `insert` of a row (holding its `id`); see `mutation`. */
  insert(table: ChildTable, row: Record<string, unknown>): Frame {
    return this.mutation({ type: "insert", table, row: { ...row } });
  }

  /** A `delete` of a row; see `mutation`. */
  delete(table: ChildTable, id: string): Frame {
    return this.mutation({ type: "delete", table, id });
  }

  /** A `reorder` putting `ids` first, in this order; see `mutation`. */
  reorder(table: ChildTable, ids: Iterable<string>): Frame {
    return this.mutation({ type: "reorder", table, ids: [...ids] });
  }

  /** A `flush` (save now); see `mutation`. */
  flush(): Frame {
    return this.mutation({ type: "flush" });
  }

  /**
   * Queue every unanswered mutation again, in mid order, unless already queued; return the mids.
   *
   * Only while live: a connection that is not in sync yet sends them all when it is.
   */
  resendUnacked(): number[] {
    if (this.phase !== "live") return [];
    const queued = new Set(this.outbox.map(([, mid]) => mid).filter((mid) => mid !== null));
    const mids = this.unacked.filter((mid) => !queued.has(mid));
    for (const mid of mids) {
      const entry = this.unackedMutations.get(mid)!;
      entry.sent = true;
      this.outbox.push([entry.frame, mid]);
    }
    return mids;
  }

  /**
   * Queue `ping {t}` unless one with an equal `t` waits; `pong_received` reports its answer.
   *
   * @throws TypeError `t` cannot be written as JSON.
   */
  ping(t: unknown): void {
    const key = pingKey(t);
    if (this.pings.has(key)) return;
    const frame: Frame = { type: "ping", t };
    checkJson(frame);
    this.pings.set(key, frame);
    if (this.phase === "live") this.outbox.push([frame, null]);
  }

  // ---- server frames ---------------------------------------------------------------------------

  /** Handle one WebSocket message; return it parsed, or null if it is no JSON object (a violation). */
  receiveText(message: string | ArrayBuffer | Uint8Array): Frame | null {
    if (this.phase === "idle" || this.phase === "closed") return null;
    let frame: Frame;
    try {
      frame = parse(message);
    } catch (error) {
      if (!(error instanceof BadServerFrame)) throw error;
      this.violate(error.message);
      return null;
    }
    this.receiveFrame(frame);
    return frame;
  }

  /** Handle one parsed server frame. Frames arriving after the client left a connection are ignored. */
  receiveFrame(frame: Frame): void {
    if (this.phase === "idle" || this.phase === "closed") return;
    try {
      this.dispatch(frame);
    } catch (error) {
      if (!(error instanceof BadServerFrame)) throw error;
      this.violate(error.message);
    }
  }

  private dispatch(frame: Frame): void {
    const type = frame["type"];
    switch (type) {
      case "welcome":
        return this.onWelcome(frame);
      case "snapshot":
        return this.onSnapshot(frame);
      case "change":
        return this.onChange(frame);
      case "ack":
        return this.onAck(frame);
      case "error":
        return this.onError(frame);
      case "saved": {
        const saved: SavedUpTo = { type: "saved_up_to", seq: get(frame, "seq", "int"), at: get(frame, "at", "str") };
        this.lastSaved = saved;
        this.savedSeq = Math.max(this.savedSeq, saved.seq);
        this.events.push(saved);
        return;
      }
      case "presence": {
        const editors = get(frame, "editors", "list") as Frame[];
        const count = getOptionalInt(frame, "count");
        // A presence lists at most the server's limit; `count` (newer servers) says how many there are.
        this.editors = editors;
        this.editorCount = count ?? editors.length;
        this.events.push({ type: "presence_changed", editors: [...editors], count: this.editorCount });
        return;
      }
      case "event":
        this.events.push({ type: "noticed", topic: get(frame, "topic", "str"), data: frame["data"] ?? null });
        return;
      case "pong":
        return this.onPong(frame);
      default:
        // A frame type of a later protocol version: nothing to do.
        if (typeof type !== "string") throw new BadServerFrame("a frame needs a string type");
    }
  }

  private onWelcome(frame: Frame): void {
    if (this.welcome !== null) throw new BadServerFrame("a second welcome on one connection");
    if (frame["protocol"] !== PROTOCOL_VERSION) {
      throw new BadServerFrame(
        `welcome.protocol: expected ${PROTOCOL_VERSION}, got ${JSON.stringify(frame["protocol"] ?? null)}`,
      );
    }
    const projectId = get(frame, "project_id", "str");
    if (projectId !== this.projectId) {
      throw new BadServerFrame(`welcome.project_id: expected ${this.projectId}, got ${projectId}`);
    }
    const welcome: Joined = {
      type: "joined",
      project_id: projectId,
      epoch: get(frame, "epoch", "str"),
      seq: get(frame, "seq", "int"),
      session: get(frame, "session", "str"),
      resumed: false,
    };
    this.welcome = welcome;
    this.session = welcome.session;
    this.phase = "syncing";
    const resume = this.sentResume;
    // The server replays changes only for the current epoch and a seq it still has; else a snapshot comes.
    this.resumable = resume !== null && resume[0] === welcome.epoch && resume[1] <= welcome.seq;
    if (this.resumable && this.seq >= welcome.seq) this.join(true);
  }

  private onSnapshot(frame: Frame): void {
    if (this.welcome === null) throw new BadServerFrame("snapshot before welcome");
    const epoch = get(frame, "epoch", "str");
    const seq = get(frame, "seq", "int");
    const project = get(frame, "project", "dict");
    const scenes = getRows(frame, "scenes");
    const clips = getRows(frame, "clips");
    const savedSeq = get(frame, "saved_seq", "int");
    if (epoch !== this.epoch) this.ackedSeq = 0; // acks of another epoch say nothing about this one's seqs
    const sides: Record<string, Row[]> = {};
    for (const table of SIDE_TABLES) if (table in frame) sides[table] = getRows(frame, table);
    this.view.reset(project, scenes, clips, sides);
    this.epoch = epoch;
    this.seq = seq;
    this.savedSeq = savedSeq;
    this.resyncsInARow = 0;
    this.snapshotNeeded = false;
    this.events.push({ type: "view_replaced", epoch, seq });
    if (this.phase === "syncing") {
      this.join(false);
    } else if (this.resendOnReconnect) {
      // A snapshot in mid-session replaces a backlog the server dropped, and the acks and errors
      // in it went too; sent again, each mid is answered again and applied at most once.
      this.resendUnacked();
    }
  }

  private onChange(frame: Frame): void {
    const welcome = this.welcome;
    if (welcome === null) throw new BadServerFrame("change before welcome");
    const syncing = this.phase === "syncing";
    if (syncing && !this.resumable) throw new BadServerFrame("change before the snapshot");
    const seq = checkChange(frame);
    if (seq <= this.seq) return; // a repeat of a change already applied
    if (seq !== this.seq + 1) {
      this.resync(`missed changes ${this.seq + 1}..${seq - 1}`, true);
      return;
    }
    if (!this.view.apply(frame)) {
      this.resync(`change ${seq} updates a row the view does not hold`, false);
      return;
    }
    this.seq = seq;
    this.resyncsInARow = 0;
    this.events.push({
      type: "change_applied",
      seq,
      table: frame["table"] as string,
      op: frame["op"] as string,
      id: frame["id"] as string,
    });
    if (syncing && seq >= welcome.seq) this.join(true);
  }

  private onAck(frame: Frame): void {
    const mid = get(frame, "mid", "int");
    const seq = get(frame, "seq", "int");
    this.ackedSeq = Math.max(this.ackedSeq, seq);
    if (this.unackedMutations.delete(mid)) this.events.push({ type: "acknowledged", mid, seq });
  }

  private onError(frame: Frame): void {
    const mid = getOptionalInt(frame, "mid");
    const code = get(frame, "code", "str");
    const message = get(frame, "message", "str");
    if (mid !== null && this.unackedMutations.delete(mid)) {
      this.events.push({ type: "rejected", mid, code, message });
    } else {
      this.events.push({ type: "server_error", mid, code, message });
    }
  }

  private onPong(frame: Frame): void {
    if (!("t" in frame)) throw new BadServerFrame("pong.t is missing");
    if (this.pings.delete(pingKey(frame["t"]))) this.events.push({ type: "pong_received", t: frame["t"] });
  }

  // ---- transitions -----------------------------------------------------------------------------

  /** The view is in sync: go live, then send the unanswered mutations (mid order) and pings. */
  private join(resumed: boolean): void {
    const welcome = this.welcome!;
    this.phase = "live";
    this.syncAttempts = 0;
    this.backoff.reset();
    this.events.push({ ...welcome, resumed });
    for (const [mid, entry] of [...this.unackedMutations]) {
      if (entry.sent && !this.resendOnReconnect) {
        this.unackedMutations.delete(mid);
        this.events.push({ type: "unanswered", mid });
        continue;
      }
      entry.sent = true;
      this.outbox.push([entry.frame, mid]);
    }
    for (const frame of this.pings.values()) this.outbox.push([frame, null]);
  }

  /** Leave the connection to recover missed or diverged state on a new one. */
  private resync(why: string, resume: boolean): void {
    const joined = this.phase === "live";
    this.leave();
    this.phase = "idle";
    if (!joined) {
      this.syncAttempts += 1;
      if (this.syncAttempts >= MAX_SYNC_ATTEMPTS) {
        this.violate("the change stream never lined up with the view");
        return;
      }
      this.snapshotNeeded = true; // a resumed stream that does not line up: start over
    } else {
      this.resyncsInARow += 1;
      if (this.resyncsInARow > MAX_RESYNCS_IN_A_ROW) {
        this.violate(`${why}, again after ${MAX_RESYNCS_IN_A_ROW} reconnects`);
        return;
      }
      this.resyncs += 1;
      this.snapshotNeeded = this.snapshotNeeded || !resume;
    }
    this.events.push({ type: "resyncing", reason: why, resume: this.resumePoint() !== null });
  }

  private violate(reason: string): void {
    this.leave();
    this.pings.clear();
    this.syncAttempts = 0;
    this.phase = "closed";
    this.events.push({ type: "violation", reason });
  }

  /** Stop using the connection: mutations queued but not taken were never sent. */
  private leave(): void {
    for (const [, mid] of this.outbox) {
      const entry = mid !== null ? this.unackedMutations.get(mid) : undefined;
      if (entry !== undefined) entry.sent = false;
    }
    this.outbox = [];
  }
}
