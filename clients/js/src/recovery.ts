/**
 * Edits of a tab that closed before syncd had them. An edit lives only in its page until syncd
 * acknowledges it; the page asks before it is left (`warnBeforeUnload`), but a crashed tab, a killed
 * browser, a laptop whose battery died or a mobile tab the system discarded asks nothing. So while a
 * connection has mutations without an answer, they are also kept in the browser's storage, under
 * the project and the connection's client id, and removed once answered.
 *
 * When a page's connection to a project joins, the page looks for such records left by client ids
 * whose page is gone, and sends them from there, under their own client id and mids: syncd acknowledges
 * a mid it already has again and applies it zero times (protocol §7), so an edit that did reach
 * syncd before its page died is not applied twice. Whether a page is gone is told by a Web Lock: a
 * page holds one per record for as long as it keeps the record, and the browser lets it go when the
 * page ends, however it ends (see `Kept`). Where there are no Web Locks, nothing is kept: a page
 * could not tell a live tab's record from a dead one's, and sending under a live tab's client id
 * would take its connection over (4409).
 */

import type { EditorClient } from "./client.js";
import type { Unsubscribe } from "./emitter.js";
import { type Frame, isObject } from "./frames.js";
import { type KeyValueStorage, stored, storedKeys } from "./storage.js";
import { CLOSE_NOT_FOUND, CLOSE_TAKEN_OVER } from "./wire.js";

/** The key prefix of the kept edits, followed by `{projectId}.{clientId}`. */
export const UNSENT_KEY = "syncd.unsent.";

/** The part of the Web Locks API (`navigator.locks`) the recovery uses. */
export interface Locks {
  request(name: string, callback: (lock: unknown) => Promise<unknown>): Promise<unknown>;
  request(name: string, options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<unknown>): Promise<unknown>;
}

/** The browser's Web Locks, or null where there are none (Node, an older browser, a page that is not a secure context). */
export function browserLocks(): Locks | null {
  const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks;
  return locks !== undefined && typeof locks.request === "function" ? locks : null;
}

/** What one connection kept: its mutations without an answer, with the daemon and the user they went to and with. */
interface Unsent {
  projectId: string;
  clientId: string;
  /** The editor URL of the daemon (a studio pointed at staging must not send them to production). */
  daemon: string;
  user: string | null;
  frames: Frame[];
}

/** Sends kept mutations from a client made with their client id; resolves once each is answered. */
export type Finish = (projectId: string, clientId: string, frames: Frame[]) => Promise<void>;

/** Milliseconds the record waits after an answer, to take the answers that follow with it. */
const ANSWERED_WRITE_MS = 250;

const recordKey = (projectId: string, clientId: string): string => `${UNSENT_KEY}${projectId.toLowerCase()}.${clientId.toLowerCase()}`;

/** The kept edits of one studio's connections, and the sending of those a closed page left. */
export class Recovery {
  /** The keys of this page's own records. */
  private readonly own = new Set<string>();
  private readonly finishing = new Set<string>();

  constructor(
    private readonly storage: KeyValueStorage,
    private readonly locks: Locks,
  ) {}

  /** Keep `editor`'s mutations without an answer in the storage while it has any; returns what stops it. */
  track(editor: EditorClient): Unsubscribe {
    const kept = new Kept(editor, this.storage, this.locks);
    this.own.add(kept.key);
    let joined = false;
    const stops = [
      editor.on("unacked", (mids) => kept.changed(mids)),
      editor.on("joined", () => (joined = true)),
      editor.on("disconnected", (event) => {
        // Another connection took the client id over (4409): nothing may be sent under it any more,
        // from this page or a later one, which would take that connection over in turn. A project
        // that was there and is gone (4404 after a join) was deleted: its edits are moot. A 4404
        // before any join is a Redux copy waiting for its adoption: kept.
        if (event.code === CLOSE_TAKEN_OVER || (event.code === CLOSE_NOT_FOUND && joined)) kept.forget();
      }),
    ];
    return () => stops.forEach((stop) => stop());
  }

  /**
   * Send the edits that pages now closed kept for `projectId` on `daemon` (an editor URL) under
   * `user` (null: anonymous), each record while holding its lock, so that no other page sends it at
   * the same time.
   * A record that cannot be sent now (the project is not in syncd yet, syncd is away) stays for a
   * later try; one that cannot be read is removed.
   */
  async recover(projectId: string, daemon: string, user: string | null, finish: Finish): Promise<void> {
    for (const key of storedKeys(this.storage, recordKey(projectId, ""))) {
      const clientId = key.slice(key.lastIndexOf(".") + 1);
      if (this.own.has(key) || this.finishing.has(key)) continue;
      this.finishing.add(key);
      try {
        // A page holds the lock of its record for as long as the record is kept (see `Kept`), so a
        // record whose lock is free was left by a page that is gone.
        await this.locks.request(key, { ifAvailable: true }, async (lock) => {
          if (lock === null) return; // its page is still open
          const record = readRecord(stored(this.storage, (s) => s.getItem(key)));
          if (record === null || record.clientId !== clientId) {
            stored(this.storage, (s) => s.removeItem(key));
            return;
          }
          if (record.daemon !== daemon || record.user !== user) return; // another daemon's or user's: theirs to send
          await finish(record.projectId, clientId, record.frames);
          stored(this.storage, (s) => s.removeItem(key));
        });
      } catch {
        // Left for the next try: the next time a page's connection to the project joins.
      } finally {
        this.finishing.delete(key);
      }
    }
  }
}

/** A kept record, or null when it is not one this client wrote. */
function readRecord(text: string | null): Unsent | null {
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(value) || !Array.isArray(value["frames"]) || typeof value["clientId"] !== "string" || typeof value["projectId"] !== "string") return null;
  const user = value["user"];
  if ((user !== null && typeof user !== "string") || typeof value["daemon"] !== "string") return null;
  return { projectId: value["projectId"], clientId: value["clientId"], daemon: value["daemon"], user, frames: value["frames"].filter(isObject) };
}

/**
 * One connection's record. It is written only while the page holds the Web Lock named by its key,
 * and the lock is let go only once the record is removed: a page that finds a record with its lock
 * free knows its page is gone. The lock is held only while edits wait for an answer, as browsers
 * advise (a page holding one loses its place in some browsers' back/forward cache).
 */
class Kept {
  readonly key: string;
  /** The highest mid written. */
  private keptUpTo = 0;
  private writing: "now" | "soon" | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** While the lock is held: what lets it go. */
  private release: (() => void) | null = null;
  private acquiring = false;
  private forgotten = false;

  constructor(
    private readonly editor: EditorClient,
    private readonly storage: KeyValueStorage,
    private readonly locks: Locks,
  ) {
    this.key = recordKey(editor.projectId, editor.clientId);
  }

  /**
   * The mutations without an answer are now `mids`. A new mutation is written before the page's
   * task ends (a crash cannot come in between; the mutations of one call, such as a long
   * syncScenes, are written once). An answer only makes the record shorter: written a moment later,
   * together with the answers that follow it, since sending an answered mutation again is harmless.
   */
  changed(mids: number[]): void {
    if ((mids.at(-1) ?? 0) > this.keptUpTo) {
      if (this.writing !== "now") queueMicrotask(() => this.write());
      this.writing = "now";
    } else if (this.writing === null) {
      this.writing = "soon";
      this.timer = setTimeout(() => this.write(), ANSWERED_WRITE_MS);
    }
  }

  /** Keep nothing more of this connection: its record is removed, its lock let go. */
  forget(): void {
    this.forgotten = true;
    this.write();
  }

  private write(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = this.writing = null;
    const frames = this.forgotten ? [] : this.editor.pending;
    if (frames.length === 0) {
      this.keptUpTo = 0;
      stored(this.storage, (s) => s.removeItem(this.key));
      this.release?.();
      this.release = null;
      return;
    }
    if (this.release === null) {
      this.acquire(); // written once the lock is held
      return;
    }
    this.keptUpTo = Number(frames.at(-1)!["mid"]);
    const record: Unsent = {
      projectId: this.editor.projectId.toLowerCase(),
      clientId: this.editor.clientId.toLowerCase(),
      daemon: this.editor.url,
      user: this.editor.tokenUser,
      frames,
    };
    stored(this.storage, (s) => s.setItem(this.key, JSON.stringify(record)));
  }

  private acquire(): void {
    if (this.acquiring) return;
    this.acquiring = true;
    const held = (): Promise<void> =>
      new Promise((resolve) => {
        this.acquiring = false;
        this.release = resolve;
        this.write(); // what waits now, or the lock let go at once when nothing does
      });
    this.locks.request(this.key, held).catch(() => {
      this.acquiring = false; // no lock, nothing kept; the next mutation tries again
    });
  }
}
