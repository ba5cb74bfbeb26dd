/**
 * `EditorClient`: one editor's connection to one project, a thin layer of WebSocket I/O over
 * `ClientProtocol`.
 *
 * The protocol object decides everything about the stream (the view, gaps, mids, what to resend);
 * this class dials, reads and writes, reconnects when the protocol says so (after its backoff delay,
 * or at once after a gap), and turns the protocol's events into answers for waiting calls and into
 * events for the application: `change`, `presence`, `saved`, `event` (the renderer's notices), ...
 * Close codes are handled as §16 of docs/protocol.md says: 1000, 1002, 1009, 4401, 4403, 4404 and
 * 4409 are final, any other code reconnects, resumes and resends the unacknowledged mutations. After
 * 4409 (another connection took the client id over) the client never connects again: a new client
 * with a fresh client id must.
 */

import { definedFields, idList, patchFields } from "./args.js";
import { Emitter, type Unsubscribe } from "./emitter.js";
import { ClientClosed, EditorError, TimeoutError } from "./errors.js";
import type {
  ChangeApplied,
  ClientEvent,
  Disconnected,
  Joined,
  Noticed,
  SavedUpTo,
  ServerError,
  ViewReplaced,
} from "./events.js";
import { describeMutation, encode, type Frame } from "./frames.js";
import { editorUrl, editorUrlOption, rowId, uuidOption } from "./ids.js";
import { MUTATION_BURST, MUTATION_RATE, TokenBucket } from "./pacing.js";
import { askBeforeLeaving, whenOnline, whenPageReturns } from "./page.js";
import { ClientProtocol, type Phase, type ProtocolOptions } from "./protocol.js";
import { checkTokenSource, currentToken, type TokenSource, tokenUser } from "./token.js";
import type { ProjectView } from "./view.js";
import {
  CLOSE_ABNORMAL,
  CLOSE_NORMAL,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TAKEN_OVER,
  type ChildTable,
  type Table,
} from "./wire.js";

export { editorUrl };

/**
 * An event handler property taking at least what the client reads from `E`.
 *
 * Checked bivariantly (the method-signature form), because the sockets declare their handlers with
 * their own event classes (the DOM's `MessageEvent`, `ws`'s `WebSocket.MessageEvent`, ...): with a
 * plain function type, strict parameter checks would refuse both, since the client's narrower event
 * type is not one of theirs.
 */
export type SocketHandler<E> = { handle(event: E): void }["handle"];

/** The part of the WHATWG `WebSocket` the client uses; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: SocketHandler<unknown> | null;
  onmessage: SocketHandler<{ data: unknown }> | null;
  onclose: SocketHandler<{ code: number; reason: string }> | null;
  onerror: SocketHandler<unknown> | null;
}

/** A `WebSocket` constructor: `globalThis.WebSocket` in a browser, `ws`'s `WebSocket` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Where the client stands, for people: a summary of the protocol's phase and the reconnect loop. */
export type ConnectionStatus = "new" | "connecting" | "live" | "reconnecting" | "closed";

/** What `patch`, `insert`, ... resolve with: the mutation's mid and the seq of its last change. */
export interface Ack {
  mid: number;
  seq: number;
}

/** The events an `EditorClient` emits; subscribe with `client.on(name, listener)`. */
export interface EditorClientEvents extends Record<string, unknown> {
  /** The view is in sync on a new connection. */
  joined: Joined;
  /** A change was applied to the view. */
  change: ChangeApplied;
  /** A snapshot replaced the whole view. */
  snapshot: ViewReplaced;
  /** The view changed in any way (a change or a snapshot). */
  view: ProjectView;
  /** Who has the project open. */
  presence: Frame[];
  /** Every change up to `seq` is in the database. */
  saved: SavedUpTo;
  /** A renderer `event` (`render.progress`, ...), not persisted. */
  event: Noticed;
  /** An `error` frame that answers no waiting call. */
  error: EditorError;
  /** The connection ended; `final` says whether the client reconnects by itself. */
  disconnected: Disconnected;
  /** The status changed. */
  status: ConnectionStatus;
  /** Every event of the protocol, in order, for logs and tools. */
  protocol: ClientEvent;
  /** The mutations without an answer changed (one was made, answered or restored): their mids. */
  unacked: number[];
}

/** The settings of an `EditorClient`. */
export interface EditorClientOptions extends Omit<ProtocolOptions, "token"> {
  /**
   * The access token sent in `hello` (null or absent: anonymous), or a function asked for it before
   * each `hello`, so that a reconnect an hour later sends the refreshed token, not an expired one.
   */
  token?: TokenSource;
  /** The editor URL (`ws://host:port/v1/editor`); a bare `ws://host:port` or `http://host:port` gets the path. */
  url: string;
  /** The project to open. */
  projectId: string;
  /** This editor's id across reconnects (default: a random UUID). */
  clientId?: string;
  /** The `WebSocket` constructor (default `globalThis.WebSocket`; pass `ws`'s in Node). */
  WebSocket?: WebSocketConstructor;
  /** Milliseconds for a connection to be in sync before it counts as failed (default 10,000). */
  openTimeout?: number;
  /**
   * Milliseconds a live connection may bring nothing (default 15,000). Then the client sends a ping;
   * if that too brings nothing within as long, the connection counts as lost and the client connects
   * again, resending what waits for an answer. A page cannot see WebSocket pings, so without this a
   * network path that died without a word (a firewall dropping packets, a suspended VPN, a laptop
   * woken up on another network) would show as live, with the view no longer updated and the user's
   * edits stuck, until TCP gave up, or for good while the page sends nothing.
   */
  livenessTimeout?: number;
  /**
   * In a browser page, have the browser ask before the page is closed or reloaded while this client
   * has edits that have not reached syncd (`hasUnsentEdits`; default false, `SyncdStudio` turns it
   * on). The page listens for leaving only while there are such edits, as browsers advise (a
   * `beforeunload` listener costs a page its place in some browsers' back/forward cache).
   */
  warnBeforeUnload?: boolean;
  /** The clock in seconds (default `performance.now() / 1000`); tests pass their own. */
  clock?: () => number;
  /**
   * Mutations per second on average that the client sends (default 200, the daemon's
   * `gateway.mutation_rate`); more wait in the queue, in order. Match it to the daemon's, or lower.
   */
  mutationRate?: number;
  /**
   * The burst of the daemon's bucket (default 400, the daemon's `gateway.mutation_burst`); the client
   * sends a tenth less at once, keeping it in reserve for jitter (see `pacing.ts`).
   */
  mutationBurst?: number;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

/** Milliseconds a page that comes back waits for an answer to its ping before it connects again. */
const RETURN_PROBE_MS = 5_000;

/** A random UUID, also where `crypto.randomUUID` is missing (plain-http pages that are not localhost). */
export function randomUuid(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}


/** A close reason a close frame can carry (123 bytes of UTF-8). */
function shortReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.length <= 120) return reason;
  return new TextDecoder().decode(bytes.slice(0, 120)).replace(/\uFFFD+$/, "");
}

/** One editor's live connection to one project; see the module's description. */
export class EditorClient {
  /** The sans-I/O state machine behind this client: the view, seqs, mids, unacked mutations. */
  readonly protocol: ClientProtocol;
  readonly url: string;
  readonly projectId: string;
  readonly clientId: string;
  /** `error` frames that answered no waiting call, the latest last (at most 100). */
  readonly errors: EditorError[] = [];
  /** The close code and reason of the last connection that ended, or null. */
  lastClose: { code: number; reason: string } | null = null;

  private readonly emitter = new Emitter<EditorClientEvents>();
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly openTimeout: number;
  private readonly clock: () => number;
  private ws: WebSocketLike | null = null;
  private opened = false;
  private statusValue: ConnectionStatus = "new";
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly warnBeforeUnload: boolean;
  /** The mids the last `unacked` event gave. */
  private lastUnacked: number[] = [];
  /** Set by `keepEditsForReopen` until the next join. */
  private reopenExpected = false;
  /** While the page is asked to warn before it is left (see `warnBeforeUnload`): what stops it. */
  private stopAskingBeforeLeaving: (() => void) | null = null;
  /** While a retry waits: what stops listening for the network coming back (which retries at once). */
  private stopWaitingForNetwork: (() => void) | null = null;
  private paceTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly pace: TokenBucket;
  private openTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly answers = new Map<number, Waiter<Ack>>();
  private readonly pingWaiters = new Map<string, Waiter<number> & { sentAt: number }>();
  private joinWaiters: Array<Waiter<Joined>> = [];
  private savedWaiters: Array<Waiter<SavedUpTo> & { seq: number }> = [];
  private pingCounter = 0;
  private lastJoined: Joined | null = null;
  private lastEpoch: string | null = null;
  /** Closed with 4409: another connection uses this client id now, so this client never dials again. */
  private takenOverFlag = false;
  private tokenSource: TokenSource;
  /** Counts dials, so that a token that arrives after `close()` or a newer dial opens nothing. */
  private dials = 0;
  private readonly livenessTimeout: number;
  private livenessTimer: ReturnType<typeof setTimeout> | null = null;
  /** The clock when the current connection last brought a frame (or opened). */
  private lastHeard = 0;
  /** While a liveness ping is out with nothing heard since: why the connection is given up if that lasts. */
  private probing: string | null = null;
  /** While live: what stops listening for the page coming back (see `pageReturned`). */
  private stopWatchingPage: (() => void) | null = null;

  /** @throws TypeError an option is missing or wrong (`url`, `projectId`, `clientId`, `token`, `WebSocket`). */
  constructor(options: EditorClientOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("EditorClient: pass the options, {url, projectId, ...}");
    }
    // Checked here: wrong, they would only show as a connection that never comes up.
    const url = editorUrlOption(options.url, "EditorClient: options.url");
    const projectId = uuidOption(options.projectId, "EditorClient: options.projectId");
    const clientId = options.clientId === undefined ? randomUuid() : uuidOption(options.clientId, "EditorClient: options.clientId");
    checkTokenSource(options.token, "EditorClient: options.token");
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketImpl === undefined) {
      throw new TypeError("EditorClient: no WebSocket here; pass one (the `ws` package's in Node) as options.WebSocket");
    }
    if (typeof WebSocketImpl !== "function") {
      throw new TypeError(`EditorClient: options.WebSocket must be a WebSocket class, got ${typeof WebSocketImpl}`);
    }
    this.WebSocketImpl = WebSocketImpl;
    this.url = url;
    this.projectId = projectId;
    this.clientId = clientId;
    this.openTimeout = options.openTimeout ?? 10_000;
    this.warnBeforeUnload = options.warnBeforeUnload ?? false;
    this.livenessTimeout = options.livenessTimeout ?? 15_000;
    this.clock = options.clock ?? (() => performance.now() / 1000);
    this.pace = new TokenBucket(options.mutationRate ?? MUTATION_RATE, options.mutationBurst ?? MUTATION_BURST);
    this.tokenSource = options.token ?? null;
    this.protocol = new ClientProtocol(this.projectId, this.clientId, {
      ...options,
      token: typeof this.tokenSource === "function" ? null : this.tokenSource,
    });
  }

  // ---- what the application reads --------------------------------------------------------------

  /** The live view: the project row and its scenes and clips, kept up to date. */
  get view(): ProjectView {
    return this.protocol.view;
  }

  /** `new`, `connecting`, `live`, `reconnecting` or `closed`. */
  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** The protocol's phase (`idle`, `hello`, `syncing`, `live`, `closed`). */
  get phase(): Phase {
    return this.protocol.phase;
  }

  /** Who has the project open, as the last `presence` said. */
  get editors(): Frame[] {
    return this.protocol.editors;
  }

  /** How many editors the last `presence` counted (`editors` may list only the first). */
  get editorCount(): number {
    return this.protocol.editorCount;
  }

  /** The seq of the last change applied to the view. */
  get seq(): number {
    return this.protocol.seq;
  }

  /** The highest seq the server reported saved. */
  get savedSeq(): number {
    return this.protocol.savedSeq;
  }

  /** The user the token of the last `hello` names (unchecked; see `tokenUser`), null when anonymous. */
  get tokenUser(): string | null {
    return tokenUser(this.protocol.token);
  }

  /** Mids of the mutations without an answer yet. */
  get unacked(): number[] {
    return this.protocol.unacked;
  }

  /**
   * Send again, with their own mids, the mutations an earlier instance of this client id had no
   * answer for (a tab that was closed or crashed; see `ClientProtocol.restore`). Call it on a new
   * client made with that `clientId`, before `connect()`; nothing waits for their answers but the
   * `unacked` event.
   */
  restore(frames: Frame[]): void {
    this.protocol.restore(frames);
    this.unackedChanged();
  }

  /** Call `listener` with every `name` event; returns what removes it. */
  on<K extends keyof EditorClientEvents>(name: K, listener: (payload: EditorClientEvents[K]) => void): Unsubscribe {
    return this.emitter.on(name, listener);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Open the connection (unless one is open or opening) and wait until the view is in sync.
   *
   * The client keeps reconnecting by itself after a lost connection; this rejects only when the
   * connection ends for good (`ClientClosed`: 4401, 4403, 4404, 4409, a protocol violation,
   * `close()`), or with `TimeoutError` after `timeout` milliseconds (the client goes on trying until
   * closed). After a 4409 it rejects at once: the client id is another connection's now.
   */
  connect(timeout?: number): Promise<Joined> {
    // Dialling with the same id would take it back from the other instance, which would take it
    // back again: the ping-pong §16 forbids. Only a new client, with a fresh id, may connect.
    if (this.takenOverFlag) return Promise.reject(this.takenOverError());
    const joined = new Promise<Joined>((resolve, reject) => {
      this.joinWaiters.push({ resolve, reject });
    });
    if (this.statusValue === "new" || this.statusValue === "closed") {
      this.setStatus("connecting");
      this.dial();
    } else if (this.statusValue === "live" && this.protocol.phase === "live") {
      this.settleJoin();
    }
    if (timeout === undefined) return joined;
    return withTimeout(joined, timeout, `project ${this.projectId}: not in sync within ${timeout} ms`);
  }

  /** Close the connection for good: waiting calls reject with `ClientClosed` (1000); unacked mutations are kept. */
  close(): void {
    this.clearTimers();
    this.dials += 1;
    const ws = this.ws;
    this.ws = null;
    this.protocol.close();
    this.protocol.takeEvents();
    if (ws !== null) closeQuietly(ws, CLOSE_NORMAL, "");
    this.lastClose = { code: CLOSE_NORMAL, reason: "" };
    this.setStatus("closed");
    this.failWaiters(CLOSE_NORMAL, "closed by the client");
  }

  /**
   * The mutations not yet acknowledged, oldest first, as their frames (the view with them applied:
   * `withPending(client.view, client.pending)`).
   */
  get pending(): Frame[] {
    return this.protocol.unacked.map((mid) => this.protocol.unackedFrame(mid)!);
  }

  /**
   * Whether an edit has not reached syncd yet: sent but not acknowledged, or made while the connection
   * is down, on a client not closed for good (or closed with `keepEditsForReopen`). Such an edit lives
   * only in this client (see `askBeforeLeaving`).
   */
  get hasUnsentEdits(): boolean {
    return this.protocol.unacked.length > 0 && (this.statusValue !== "closed" || this.reopenExpected);
  }

  /**
   * The edits this closed client keeps will be sent by a later `connect()`: count them as unsent (so
   * the page asks before it is left) until the client joins again. A store showing the Redux copy of
   * a project syncd does not have (4404) calls this: the edits made on the copy are sent once
   * `adoptProject` saves it. Edits kept after other closes (a project deleted, access refused) are
   * not counted, since no later connect would send them.
   */
  keepEditsForReopen(): void {
    this.reopenExpected = true;
    this.guardLeaving();
  }

  /** Whether another connection took this client's id over (4409): it can never connect again. */
  get takenOver(): boolean {
    return this.takenOverFlag;
  }

  /** Replace the token (or the function giving it) for the next `hello` (after a 4401, with `connect()` again). */
  setToken(token: TokenSource): void {
    checkTokenSource(token, "EditorClient.setToken");
    this.tokenSource = token ?? null;
    if (typeof token !== "function") this.protocol.token = token ?? null;
  }

  // ---- mutations -------------------------------------------------------------------------------

  /**
   * Change fields of one row; resolves once it is durable on the daemon, rejects with `EditorError`
   * if refused. Keys whose value is undefined are left out, as `JSON.stringify` does; a `set` with
   * nothing left rejects with `TypeError`, like any argument JSON cannot carry (no mid is used).
   */
  patch(table: Table, id: string, set: Record<string, unknown>): Promise<Ack> {
    return this.send(describeMutation({ type: "patch", table, id }), (what) => this.protocol.patch(table, rowId(id), patchFields(set, what)));
  }

  /** Add a row (it must hold its `id`; keys whose value is undefined are left out); see `patch`. */
  insert(table: ChildTable, row: Record<string, unknown>): Promise<Ack> {
    const id = typeof row?.["id"] === "string" ? (row["id"] as string) : null;
    return this.send(describeMutation({ type: "insert", table, row: { id } }), (what) => {
      const fields = definedFields(row, what, "row");
      return this.protocol.insert(table, id === null ? fields : { ...fields, id: rowId(id) });
    });
  }

  /** Remove a row; see `patch`. */
  delete(table: ChildTable, id: string): Promise<Ack> {
    return this.send(describeMutation({ type: "delete", table, id }), () => this.protocol.delete(table, rowId(id)));
  }

  /** Put `ids` first, in this order (`scene_index` / `order_index` = position); see `patch`. */
  reorder(table: ChildTable, ids: Iterable<string>): Promise<Ack> {
    return this.send(describeMutation({ type: "reorder", table }), (what) =>
      this.protocol.reorder(table, idList(ids, what).map((id) => rowId(id as string))),
    );
  }

  /** Save now (the seed's `saveNow()`): resolves with the ack; `waitSaved(ack.seq)` waits for the write. */
  flush(): Promise<Ack> {
    return this.send(describeMutation({ type: "flush" }), () => this.protocol.flush());
  }

  /** Send any mutation frame (`{type, ...}`); it gets the next mid. */
  mutation(frame: Frame): Promise<Ack> {
    return this.send(`${String(frame?.["type"])} mutation`, (what) => this.protocol.mutation(definedFields(frame, what, "the frame")));
  }

  /**
   * Wait until every change up to `seq` is in the database (default: everything this client has
   * had acknowledged, and the view's seq when that is higher). Seqs count within an epoch: after a
   * daemon restart the wait is for the new view's seq.
   */
  waitSaved(seq?: number, timeout?: number): Promise<SavedUpTo> {
    const target = seq ?? Math.max(this.protocol.ackedSeq, this.protocol.seq);
    let promise: Promise<SavedUpTo>;
    if (this.protocol.savedSeq >= target) {
      promise = Promise.resolve(this.protocol.lastSaved ?? { type: "saved_up_to", seq: this.protocol.savedSeq, at: null });
    } else if (this.statusValue === "closed") {
      promise = Promise.reject(this.closedError());
    } else {
      promise = new Promise((resolve, reject) => this.savedWaiters.push({ seq: target, resolve, reject }));
    }
    return timeout === undefined ? promise : withTimeout(promise, timeout, `not saved up to seq ${target} within ${timeout} ms`);
  }

  /** Measure the round trip: resolves with the milliseconds between `ping` and its `pong`. */
  ping(timeout?: number): Promise<number> {
    // A closed client sends nothing: the pong would never come.
    if (this.statusValue === "closed") return Promise.reject(this.closedError());
    this.pingCounter += 1;
    const t = `${this.clientId}:${this.pingCounter}`;
    const promise = new Promise<number>((resolve, reject) => {
      this.pingWaiters.set(JSON.stringify(t), { resolve, reject, sentAt: this.clock() });
    });
    this.protocol.ping(t);
    this.pump();
    return timeout === undefined ? promise : withTimeout(promise, timeout, `no pong within ${timeout} ms`);
  }

  // ---- internals: the socket -------------------------------------------------------------------

  /**
   * Make a mutation with `make` and wait for its answer. Whatever `make` throws (an argument the
   * protocol cannot carry) rejects the call instead: the methods are typed as returning a promise,
   * and callers handle failures there.
   *
   * @param what the call, for error messages (`patch of scenes <id>`).
   */
  private send(what: string, make: (what: string) => Frame): Promise<Ack> {
    if (this.takenOverFlag) return Promise.reject(this.takenOverError());
    let frame: Frame;
    try {
      frame = make(what);
    } catch (error) {
      if (error instanceof TypeError && !error.message.startsWith(what)) {
        return Promise.reject(new TypeError(`${what}: ${error.message}`, { cause: error }));
      }
      return Promise.reject(error);
    }
    const mid = frame["mid"] as number;
    const promise = new Promise<Ack>((resolve, reject) => this.answers.set(mid, { resolve, reject }));
    if (this.statusValue === "closed") {
      // Kept by the protocol for the next connect(); this call's answer would not come on this one.
      this.answers.delete(mid);
      this.unackedChanged();
      return Promise.reject(this.closedError(true));
    }
    this.pump();
    this.unackedChanged();
    return promise;
  }

  /** Keep an eye on the connection from the moment it is live (see `livenessTimeout`). */
  private watchLiveness(): void {
    if (this.livenessTimer !== null || this.ws === null) return;
    this.livenessTimer = setTimeout(() => this.checkLiveness(), this.livenessTimeout);
    this.stopWatchingPage ??= whenPageReturns(() => this.pageReturned());
  }

  private checkLiveness(): void {
    this.livenessTimer = null;
    const ws = this.ws;
    if (ws === null || this.protocol.phase !== "live") return;
    if (this.probing !== null) {
      // Nothing came since the ping, however short the silence the clock counts (a clock that
      // stood still while the machine slept).
      this.ws = null;
      closeQuietly(ws, CLOSE_NORMAL, "no answer");
      this.lastClose = { code: CLOSE_ABNORMAL, reason: this.probing };
      this.protocol.connectionLost(CLOSE_ABNORMAL, this.probing, this.clock());
      this.handleEvents();
      return;
    }
    const silent = (this.clock() - this.lastHeard) * 1000;
    if (silent < this.livenessTimeout) {
      this.livenessTimer = setTimeout(() => this.checkLiveness(), this.livenessTimeout - silent);
    } else {
      const seconds = Math.round((2 * this.livenessTimeout) / 1000);
      this.probe(this.livenessTimeout, `no answer from syncd for ${seconds} s, not even to a ping`);
    }
  }

  /** Ping, and give the connection up (with `reason`) if nothing comes within `wait` ms. */
  private probe(wait: number, reason: string): void {
    if (this.livenessTimer !== null) clearTimeout(this.livenessTimer);
    this.probing = reason;
    this.ping().catch(() => undefined); // any frame will do as the answer, the pong included
    this.livenessTimer = setTimeout(() => this.checkLiveness(), wait);
  }

  /**
   * The page is shown again or back online: it may have slept, and its connection with it, while
   * the clock counted little of that. Ask now rather than after a liveness timeout or two.
   */
  private pageReturned(): void {
    if (this.ws === null || this.protocol.phase !== "live" || this.probing !== null) return;
    const wait = Math.min(RETURN_PROBE_MS, this.livenessTimeout);
    this.probe(wait, `no answer from syncd within ${wait / 1000} s of a ping sent as the page came back`);
  }

  /** After the mutations without an answer may have changed: guard leaving, tell the listeners. */
  private unackedChanged(): void {
    this.guardLeaving();
    const mids = this.protocol.unacked;
    if (mids.length === this.lastUnacked.length && mids.every((mid, i) => mid === this.lastUnacked[i])) return;
    this.lastUnacked = mids;
    this.emitter.emit("unacked", mids);
  }

  /** Ask before the page is left exactly while edits are unsent (see `warnBeforeUnload`). */
  private guardLeaving(): void {
    if (!this.warnBeforeUnload) return;
    const unsent = this.hasUnsentEdits;
    if (unsent && this.stopAskingBeforeLeaving === null) {
      this.stopAskingBeforeLeaving = askBeforeLeaving(() => this.hasUnsentEdits);
    } else if (!unsent && this.stopAskingBeforeLeaving !== null) {
      this.stopAskingBeforeLeaving();
      this.stopAskingBeforeLeaving = null;
    }
  }

  private dial(): void {
    this.clearTimers();
    const dial = ++this.dials;
    const source = this.tokenSource;
    if (typeof source !== "function") {
      this.open();
      return;
    }
    currentToken(source, "EditorClient: options.token").then(
      (token) => {
        if (dial !== this.dials || this.statusValue === "closed") return;
        this.protocol.token = token;
        this.open();
      },
      (error: unknown) => {
        if (dial !== this.dials || this.statusValue === "closed") return;
        // As a connection that could not be made: tried again after the backoff delay.
        const why = error instanceof Error ? error.message : String(error);
        this.protocol.connectionFailed(`the token function failed: ${why}`, this.clock());
        this.handleEvents();
      },
    );
  }

  private open(): void {
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) {
      this.ws = null;
      this.protocol.connectionFailed(String(error), this.clock());
      this.handleEvents();
      return;
    }
    this.ws = ws;
    this.opened = false;
    ws.binaryType = "arraybuffer";
    this.openTimer = setTimeout(() => this.openTimedOut(ws), this.openTimeout);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.opened = true;
      this.heard();
      this.protocol.connectionMade();
      this.pump();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.heard();
      this.protocol.receiveText(event.data as string | ArrayBuffer);
      this.handleEvents();
      this.pump();
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const code = event.code || CLOSE_ABNORMAL;
      this.lastClose = { code, reason: event.reason ?? "" };
      if (this.opened) this.protocol.connectionLost(code, event.reason ?? "", this.clock());
      else this.protocol.connectionFailed(`could not connect to ${this.url} (${code})`, this.clock());
      this.handleEvents();
    };
    ws.onerror = () => {
      // The close event that follows reports what happened.
    };
  }

  private heard(): void {
    this.lastHeard = this.clock();
    this.probing = null;
  }

  private openTimedOut(ws: WebSocketLike): void {
    if (this.ws !== ws || this.protocol.phase === "live") return;
    this.ws = null;
    closeQuietly(ws, CLOSE_NORMAL, "not in sync in time");
    const reason = `not in sync within ${this.openTimeout} ms`;
    if (this.opened) this.protocol.connectionLost(CLOSE_ABNORMAL, reason, this.clock());
    else this.protocol.connectionFailed(reason, this.clock());
    this.handleEvents();
  }

  /**
   * Write what the protocol queued, if a socket is open, pacing mutations to the daemon's rate
   * limit: one sent faster would close the connection (4429), and the rest would have to be resent.
   * Mutations beyond the pace stay in the protocol's queue, in order, and a timer comes back for them.
   */
  private pump(): void {
    const ws = this.ws;
    if (ws === null || ws.readyState !== 1) return;
    const now = this.clock();
    const frames = this.protocol.takeFrames(this.pace.available(now));
    this.pace.take(frames.filter((frame) => "mid" in frame).length, now);
    if (this.protocol.queuedFrames > 0 && this.paceTimer === null) {
      this.paceTimer = setTimeout(() => {
        this.paceTimer = null;
        this.pump();
      }, this.pace.wait(now) * 1000);
    }
    for (const frame of frames) {
      // Outside the try: every frame was checked when it was made, so a failure here is a bug to
      // see, not a closing socket to wait out.
      const text = encode(frame);
      try {
        ws.send(text);
      } catch {
        return; // the socket is closing: its close event comes next and the protocol resends
      }
    }
  }

  private clearTimers(): void {
    this.stopWaitingForNetwork?.();
    this.stopWaitingForNetwork = null;
    this.stopWatchingPage?.();
    this.stopWatchingPage = null;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.openTimer !== null) clearTimeout(this.openTimer);
    if (this.paceTimer !== null) clearTimeout(this.paceTimer);
    if (this.livenessTimer !== null) clearTimeout(this.livenessTimer);
    this.retryTimer = this.openTimer = this.paceTimer = this.livenessTimer = null;
  }

  // ---- internals: the protocol's events --------------------------------------------------------

  private handleEvents(): void {
    for (const event of this.protocol.takeEvents()) {
      this.handle(event);
      this.emitter.emit("protocol", event);
    }
    this.unackedChanged();
    this.watchLiveness(); // a connection that has just joined is watched from then on
  }

  private handle(event: ClientEvent): void {
    switch (event.type) {
      case "joined":
        if (this.openTimer !== null) clearTimeout(this.openTimer);
        this.openTimer = null;
        this.reopenExpected = false;
        this.setStatus("live");
        this.lastJoined = event;
        this.emitter.emit("joined", event);
        this.settleJoin();
        return;
      case "view_replaced":
        if (this.lastEpoch !== null && event.epoch !== this.lastEpoch) this.retargetSaved();
        this.lastEpoch = event.epoch;
        this.emitter.emit("snapshot", event);
        this.emitter.emit("view", this.view);
        return;
      case "change_applied":
        this.emitter.emit("change", event);
        this.emitter.emit("view", this.view);
        return;
      case "acknowledged":
        this.answers.get(event.mid)?.resolve({ mid: event.mid, seq: event.seq });
        this.answers.delete(event.mid);
        return;
      case "rejected":
        this.answers.get(event.mid)?.reject(new EditorError(event.code, event.message, event.mid));
        this.answers.delete(event.mid);
        return;
      case "unanswered":
        this.answers.get(event.mid)?.reject(new ClientClosed(CLOSE_ABNORMAL, `mid ${event.mid} was sent on a lost connection`));
        this.answers.delete(event.mid);
        return;
      case "server_error":
        return this.serverError(event);
      case "saved_up_to":
        this.emitter.emit("saved", event);
        this.settleSaved(event);
        return;
      case "presence_changed":
        this.emitter.emit("presence", event.editors);
        return;
      case "noticed":
        this.emitter.emit("event", event);
        return;
      case "pong_received": {
        const key = JSON.stringify(event.t);
        const waiter = this.pingWaiters.get(key);
        this.pingWaiters.delete(key);
        waiter?.resolve((this.clock() - waiter.sentAt) * 1000);
        return;
      }
      case "resyncing": {
        // Leave this connection and open the next one now; the protocol knows whether it resumes.
        const ws = this.ws;
        this.ws = null;
        if (ws !== null) closeQuietly(ws, CLOSE_NORMAL, "resync");
        this.setStatus("reconnecting");
        this.dial();
        return;
      }
      case "violation": {
        const ws = this.ws;
        this.ws = null;
        this.clearTimers();
        if (ws !== null) closeQuietly(ws, CLOSE_PROTOCOL_ERROR, event.reason);
        this.lastClose = { code: CLOSE_PROTOCOL_ERROR, reason: event.reason };
        this.setStatus("closed");
        this.failWaiters(CLOSE_PROTOCOL_ERROR, shortReason(event.reason));
        return;
      }
      case "disconnected":
        this.emitter.emit("disconnected", event);
        if (event.final) {
          this.clearTimers();
          if (event.code === CLOSE_TAKEN_OVER) this.takenOverFlag = true;
          this.setStatus("closed");
          this.failWaiters(event.code, event.reason);
        } else {
          // The protocol forgot the pings of the lost connection: their pongs will not come.
          this.failPings(new ClientClosed(event.code, event.reason));
          this.setStatus("reconnecting");
          this.retryTimer = setTimeout(() => this.dial(), Math.max(0, (event.retry_at! - this.clock()) * 1000));
          // The backoff delay grows to 30 s while the network is away; once the browser says it is
          // back, waiting out the rest of the delay would only hold the user's edits back.
          this.stopWaitingForNetwork = whenOnline(() => this.dial());
        }
        return;
    }
  }

  private serverError(event: ServerError): void {
    const error = new EditorError(event.code, event.message, event.mid);
    this.errors.push(error);
    if (this.errors.length > 100) this.errors.shift();
    this.emitter.emit("error", error);
  }

  private settleJoin(): void {
    const waiters = this.joinWaiters;
    this.joinWaiters = [];
    const joined = this.lastJoined!;
    for (const waiter of waiters) waiter.resolve(joined);
  }

  private settleSaved(saved: SavedUpTo): void {
    const still: typeof this.savedWaiters = [];
    for (const waiter of this.savedWaiters) {
      if (this.protocol.savedSeq >= waiter.seq) waiter.resolve(saved);
      else still.push(waiter);
    }
    this.savedWaiters = still;
  }

  /**
   * A snapshot of a new epoch: the daemon restarted and its seqs began again. What was acknowledged
   * before is in its journal and part of the new view, so a wait for an old seq becomes a wait for
   * the new view's seq.
   */
  private retargetSaved(): void {
    for (const waiter of this.savedWaiters) waiter.seq = Math.min(waiter.seq, this.protocol.seq);
  }

  private failPings(error: ClientClosed): void {
    for (const waiter of this.pingWaiters.values()) waiter.reject(error);
    this.pingWaiters.clear();
  }

  /** The connection ended for good: every waiting call rejects, and says whether its mutation stays. */
  private failWaiters(code: number, reason: string): void {
    const error = this.takenOverFlag ? this.takenOverError() : new ClientClosed(code, reason);
    const kept = this.takenOverFlag ? error : new ClientClosed(code, reason, true);
    for (const waiter of this.answers.values()) waiter.reject(kept);
    this.answers.clear();
    this.failPings(error);
    for (const waiter of this.joinWaiters) waiter.reject(error);
    this.joinWaiters = [];
    for (const waiter of this.savedWaiters) waiter.reject(error);
    this.savedWaiters = [];
  }

  /** Why a call on the closed client cannot be answered; `kept` for a mutation it keeps. */
  private closedError(kept = false): ClientClosed {
    if (this.takenOverFlag) return this.takenOverError();
    return new ClientClosed(this.lastClose?.code ?? CLOSE_ABNORMAL, this.lastClose?.reason ?? "", kept);
  }

  /** What every call says once the client id was taken over (4409). */
  private takenOverError(): ClientClosed {
    return new ClientClosed(
      CLOSE_TAKEN_OVER,
      `another connection took client id ${this.clientId} over; this client cannot connect again: make a new ` +
        "EditorClient with a fresh client id, and send its unacknowledged mutations there",
    );
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.statusValue) return;
    this.statusValue = status;
    this.guardLeaving(); // closed for good: its edits will not be sent from this page, unless kept for a reopen
    this.emitter.emit("status", status);
  }
}

/** Close `ws` with `code`; browsers refuse codes other than 1000 and 3000-4999 from a page, so fall back to 1000. */
function closeQuietly(ws: WebSocketLike, code: number, reason: string): void {
  const short = shortReason(reason);
  try {
    ws.close(code, short);
  } catch {
    try {
      ws.close(CLOSE_NORMAL, short);
    } catch {
      // already closed
    }
  }
}

/** `promise`, or a `TimeoutError` after `ms` milliseconds. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
