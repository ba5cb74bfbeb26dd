/**
 * `SyncdStudio`: the studio frontend's persistence calls, with the seed's names, on top of syncd.
 *
 * Live rows (the project, its scenes and clips) go over the editor WebSocket as mutations, so they
 * are ordered with every other editor's edits, broadcast at once and saved by the daemon; the rest
 * (creating and listing projects, voices, exports) goes to syncd's HTTP API (`HttpApi`). Rows come
 * and go with camelCase keys, as the frontend's Redux state keeps them; snake_case keys are accepted.
 */

import { type Ack, EditorClient, randomUuid, type WebSocketConstructor } from "./client.js";
import type { Unsubscribe } from "./emitter.js";
import { ClientClosed, HttpError, TimeoutError } from "./errors.js";
import { type FetchLike, HttpApi } from "./http.js";
import { FileUrls } from "./files.js";
import { editorUrl, editorUrlOption } from "./ids.js";
import { browserLocks, type Locks, Recovery } from "./recovery.js";
import { browserStorage, type KeyValueStorage, stored } from "./storage.js";
import {
  checkFields,
  type Clip,
  findLocalProject,
  isUuid,
  type Project,
  type ReduxState,
  type Scene,
  type StudioProject,
  toCamel,
  toSnake,
  writable,
} from "./rows.js";
import { checkTokenSource, currentToken, type TokenSource, tokenUser } from "./token.js";
import { withPending } from "./pending.js";
import type { ProjectView, ViewData } from "./view.js";
import { CLOSE_NOT_FOUND } from "./wire.js";

/** The settings of a `SyncdStudio`. */
export interface StudioOptions {
  /** The daemon's address: `http://host:port` or the editor URL `ws://host:port/v1/editor`. */
  url: string;
  /**
   * The access token (a Supabase user JWT), null for anonymous projects, or a function asked for it
   * before each HTTP call and each `hello`: `async () => (await supabase.auth.getSession()).data.session?.access_token ?? null`
   * keeps sending the token supabase-js refreshed, where a string would expire with the session's first token.
   */
  token?: TokenSource;
  /** The `WebSocket` constructor (default `globalThis.WebSocket`; `ws`'s in Node). */
  WebSocket?: WebSocketConstructor;
  /** The `fetch` for the HTTP API (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** The HTTP API to use instead of one built from `url`, `token` and `fetch`. */
  http?: HttpApi;
  /** This browser tab's editor id (default: a random UUID), kept across reconnects. */
  clientId?: string;
  /** Milliseconds for a project to open before `loadProject` gives up on syncd (default 5,000). */
  openTimeout?: number;
  /**
   * In a browser page, whether closing or reloading the page asks first while an edit has not reached
   * syncd: sent but not yet acknowledged, or made while the connection is down (default true). Edits
   * syncd has acknowledged are safe and do not count, saved to the database or not.
   */
  warnBeforeUnload?: boolean;
  /**
   * Where `adoptProject` notes an adoption until its rows are saved, so that one cut short (the tab
   * closed) is finished by the next call, and where edits without an answer are kept until syncd has
   * them, so that those of a tab that closed or crashed are sent by the next page that opens their
   * project (default `globalThis.localStorage` where there is one; null: nowhere).
   */
  storage?: KeyValueStorage | null;
  /**
   * The Web Locks that tell a closed page's kept edits from a live one's (default `navigator.locks`;
   * null, or none in this browser: edits are not kept; see `recovery.ts`).
   */
  locks?: Locks | null;
}

/** The key prefix of an adoption in progress in `StudioOptions.storage`, followed by the project id. */
export const ADOPTING_KEY = "syncd.adopting.";

/** What `loadProject` resolves with: the project and where it came from. */
export interface LoadedProject {
  project: StudioProject;
  /** `syncd`: the live project; `local`: syncd does not have it (or cannot be reached) and the Redux state does. */
  source: "syncd" | "local";
}

/**
 * The scenes `syncScenes` makes the project's: a list, or a function of the scenes as they are when
 * the call is sent. A scene without an `id` is a new one.
 */
export type SceneList = Array<Partial<Scene>> | ((current: Scene[]) => Array<Partial<Scene>>);

/** What `adoptProject` resolves with. */
export interface Adoption {
  /** True when the project was saved to syncd now (or an adoption cut short was finished); false when syncd already had it. */
  adopted: boolean;
  project: StudioProject;
}

/** The live view as a `StudioProject` (camelCase rows, scenes and clips in their order), or null. */
export function projectFromView(view: ProjectView): StudioProject | null {
  return studioProject(view.asData());
}

function studioProject(data: ViewData): StudioProject | null {
  if (data.project === null) return null;
  return {
    ...toCamel<Project>(data.project),
    scenes: data.scenes.map((row) => toCamel<Scene>(row)),
    clips: data.clips.map((row) => toCamel<Clip>(row)),
  };
}

/** Seconds a client sending a closed page's edits waits for their answers once in sync. */
const ANSWER_SECONDS = 30;

/** Resolves once `editor` has no mutation without an answer; rejects when it closes for good or after `ANSWER_SECONDS`. */
function answered(editor: EditorClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const stops: Unsubscribe[] = [];
    const done = (error?: Error): void => {
      for (const stop of stops) stop();
      clearTimeout(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
    const timer = setTimeout(() => done(new TimeoutError(`no answer within ${ANSWER_SECONDS} s`)), ANSWER_SECONDS * 1000);
    stops.push(
      editor.on("unacked", (mids) => mids.length === 0 && done()),
      editor.on("disconnected", (event) => event.final && done(new ClientClosed(event.code, event.reason))),
    );
    if (editor.unacked.length === 0) done();
  });
}

/** The project as this client's user sees it: the live view with the edits still in flight. */
function liveProject(editor: EditorClient): StudioProject {
  return studioProject(withPending(editor.view, editor.pending))!;
}

/** The studio's calls; one instance per browser tab (or per user session in Node). */
export class SyncdStudio {
  readonly http: HttpApi;
  readonly clientId: string;
  private readonly options: StudioOptions; // setToken changes its token
  private readonly storage: KeyValueStorage | null;
  private readonly editors = new Map<string, EditorClient>();
  private readonly users = new Map<string, number>();
  private readonly opening = new Map<string, number>();
  /** Per project, what cancels a close that waits (see `release`). */
  private readonly closing = new Map<string, () => void>();
  private readonly recovery: Recovery | null;
  private readonly files = new FileUrls((bucket, path, expiresIn) => repeated(() => this.http.signUrl(bucket, path, expiresIn)));

  /** @throws TypeError `url` is not the daemon's address, or `token` is neither a string, null nor a function. */
  constructor(options: StudioOptions) {
    // Checked here, not at the first open: an address that is no URL otherwise failed each HTTP call
    // as a network error, or made "Invalid URL" the studio's only word.
    editorUrlOption(options.url, "SyncdStudio: options.url");
    checkTokenSource(options.token, "SyncdStudio: options.token");
    this.options = options;
    this.clientId = options.clientId ?? randomUuid();
    this.http = options.http ?? new HttpApi({ baseUrl: options.url, token: () => currentToken(this.options.token, "SyncdStudio: options.token"), fetch: options.fetch });
    this.storage = options.storage !== undefined ? options.storage : browserStorage();
    const locks = options.locks !== undefined ? options.locks : browserLocks();
    this.recovery = this.storage !== null && locks !== null ? new Recovery(this.storage, locks) : null;
  }

  /** Use `token` (or the function giving it) from now on: for HTTP calls at once, for each connection at its next `hello`. */
  setToken(token: TokenSource): void {
    checkTokenSource(token, "SyncdStudio.setToken");
    this.options.token = token;
    for (const editor of this.editors.values()) editor.setToken(token);
  }

  /**
   * The live connection to `projectId` (one per project, made on first use; not connected yet).
   *
   * One whose client id another connection took over (4409: a duplicated tab carries the same id)
   * can never connect again, so a new one with a fresh id takes its place.
   */
  editor(projectId: string): EditorClient {
    let editor = this.editors.get(projectId);
    const replaced = editor?.takenOver ?? false;
    if (editor === undefined || replaced) {
      editor = this.newEditor(projectId, replaced ? randomUuid() : this.clientId);
      this.editors.set(projectId, editor);
      if (this.recovery !== null) {
        this.recovery.track(editor);
        // Once the project is there and syncd answers (at the first join, or after an adoption),
        // the edits that closed pages left for it can be sent.
        editor.on("joined", () => void this.recover(projectId));
      }
    }
    return editor;
  }

  private newEditor(projectId: string, clientId: string, warnBeforeUnload = this.options.warnBeforeUnload !== false): EditorClient {
    return new EditorClient({
      url: this.options.url,
      projectId,
      clientId,
      token: this.options.token ?? null,
      WebSocket: this.options.WebSocket,
      warnBeforeUnload,
    });
  }

  /** Send the edits that closed pages of this browser kept for `projectId` (see `recovery.ts`). */
  private async recover(projectId: string): Promise<void> {
    if (this.recovery === null) return;
    let user: string | null;
    try {
      user = tokenUser(await currentToken(this.options.token, "SyncdStudio: options.token"));
    } catch {
      return; // no token now: the next join tries again
    }
    await this.recovery.recover(projectId, editorUrl(this.options.url), user, async (project, clientId, frames) => {
      // Leaving this page loses nothing of these: they stay kept until answered.
      const editor = this.newEditor(project, clientId, false);
      try {
        editor.restore(frames);
        await editor.connect(this.options.openTimeout ?? 5_000);
        await answered(editor);
      } finally {
        editor.close();
      }
    });
  }

  /** Whether an edit made through this studio has not reached syncd yet (on a connection not closed for good). */
  hasUnsentEdits(): boolean {
    for (const editor of this.editors.values()) if (editor.hasUnsentEdits) return true;
    return false;
  }

  /** The connection to `projectId` for one more user (a hook); `release` gives it back. */
  acquire(projectId: string): EditorClient {
    this.users.set(projectId, (this.users.get(projectId) ?? 0) + 1);
    this.closing.get(projectId)?.();
    return this.editor(projectId);
  }

  /**
   * One user less for `projectId`'s connection. After the last one it is closed, but not at once:
   * after the current task, so that a user who lets go and takes it again straight away (React's
   * StrictMode mounting twice, a hook re-creating its store) keeps the same connection; and only once
   * every mutation sent on it is answered, so that edits still in flight are neither reported failed
   * nor left unsent (§16: unacknowledged mutations stay and are resent after a reconnect).
   */
  release(projectId: string): void {
    const users = (this.users.get(projectId) ?? 0) - 1;
    if (users > 0) {
      this.users.set(projectId, users);
      return;
    }
    this.users.delete(projectId);
    const editor = this.editors.get(projectId);
    if (editor !== undefined) this.closeWhenIdle(projectId, editor);
  }

  private closeWhenIdle(projectId: string, editor: EditorClient): void {
    if (this.closing.has(projectId)) return;
    let cancelled = false;
    let unsubscribe: Unsubscribe | null = null;
    const cancel = (): void => {
      cancelled = true;
      unsubscribe?.();
      if (this.closing.get(projectId) === cancel) this.closing.delete(projectId);
    };
    const closeIfIdle = (): void => {
      if (cancelled || (editor.unacked.length > 0 && editor.status !== "closed")) return;
      cancel();
      editor.close();
    };
    this.closing.set(projectId, cancel);
    queueMicrotask(() => {
      if (cancelled) return;
      // Protocol events come while the client handles a batch of them: close after the batch.
      unsubscribe = editor.on("protocol", () => queueMicrotask(closeIfIdle));
      closeIfIdle();
    });
  }

  /**
   * The connection to `projectId`, in sync. When it cannot be had, a connection that nothing else
   * uses (no store, no other call waiting, no unacknowledged edit) is closed rather than left
   * reconnecting in the background.
   */
  async open(projectId: string, timeout = this.options.openTimeout ?? 5_000): Promise<EditorClient> {
    const editor = this.editor(projectId);
    this.opening.set(projectId, (this.opening.get(projectId) ?? 0) + 1);
    try {
      await editor.connect(timeout);
      return editor;
    } catch (error) {
      const unused = (this.opening.get(projectId) ?? 0) <= 1 && !this.users.has(projectId) && editor.unacked.length === 0;
      if (unused && editor.status !== "closed") editor.close();
      throw error;
    } finally {
      const opening = (this.opening.get(projectId) ?? 1) - 1;
      if (opening > 0) this.opening.set(projectId, opening);
      else this.opening.delete(projectId);
    }
  }

  /** Close every connection now (unacknowledged edits stay with their client for a later open). */
  close(): void {
    for (const cancel of [...this.closing.values()]) cancel();
    for (const editor of this.editors.values()) editor.close();
  }

  // ---- projects --------------------------------------------------------------------------------

  /**
   * Create a project over the HTTP API (`id` optional: keep the frontend's own, else one is made
   * here); resolves with it. Tried again while syncd gives no answer or is restarting (see `repeated`).
   */
  async createProject(fields: Partial<Project> & { title?: string } = {}): Promise<Project> {
    const body = toSnake(fields);
    const row = { id: typeof body["id"] === "string" ? body["id"] : randomUuid(), ...writable("projects", fields, "createProject") };
    return toCamel<Project>(await repeated(() => this.http.createProject(row)));
  }

  /** Change fields of a project (title, script, status, aspectRatio, settings) over the WebSocket. */
  async updateProject(projectId: string, fields: Partial<Project>): Promise<Ack> {
    const set = writable("projects", fields, "updateProject");
    const editor = await this.open(projectId);
    return editor.patch("projects", projectId, set);
  }

  /** The projects the user may open (HTTP API), camelCase; asked again while syncd restarts (see `repeated`). */
  async listProjects(): Promise<Project[]> {
    return (await repeated(() => this.http.listProjects())).map((row) => toCamel<Project>(row));
  }

  /**
   * The project with its scenes and clips: live from syncd when it has it; else from `fallback`,
   * the studio's Redux state (`{projects: [...]}`), when syncd does not have the project (4404) or
   * cannot be reached in time.
   *
   * @throws ClientClosed or TimeoutError when neither has it (the error syncd gave); the connection
   *   it opened is closed then, unless a store uses it.
   */
  async loadProject(projectId: string, fallback?: ReduxState | null): Promise<LoadedProject> {
    try {
      const editor = await this.open(projectId);
      return { project: liveProject(editor), source: "syncd" };
    } catch (error) {
      const local = findLocalProject(fallback, projectId);
      const missing = error instanceof ClientClosed && error.code === CLOSE_NOT_FOUND;
      if (local === null || !(missing || error instanceof TimeoutError)) throw error;
      return { project: local, source: "local" };
    }
  }

  /**
   * Save a project of the Redux state to syncd when syncd does not have it yet, keeping its id: the
   * project row over the HTTP API (the WebSocket cannot create projects), then its scenes and clips
   * over the WebSocket, then a save. A project syncd already has is left as it is, unless an
   * adoption of it from this browser did not finish (the tab closed halfway): then the rows syncd
   * lacks are saved now. `storage` (the browser's `localStorage`) remembers an adoption until its
   * rows are saved; without one, an unfinished adoption cannot be told from a project whose rows
   * were deleted since, and is left as it is.
   *
   * The rows go over a connection of their own: edits the user made on the Redux copy while syncd
   * did not have the project wait in the project's own connection, and must reach syncd after the
   * rows they change, not before (they would be refused as `not_found`).
   */
  async adoptProject(state: StudioProject | Record<string, unknown>): Promise<Adoption> {
    const local = findLocalProject({ projects: [state as StudioProject] }, String(state["id"]));
    if (local === null || typeof local.id !== "string") throw new TypeError("adoptProject: the project needs an id");
    const { scenes, clips, ...fields } = local;
    const projectFields = writable("projects", fields, "adoptProject");
    const rows = [
      ...scenes.map((scene, i) => ["scenes", { id: scene.id, ...writable("scenes", scene, `adoptProject: scenes[${i}]`) }] as const),
      ...clips.map((clip, i) => ["clips", { id: clip.id, ...writable("clips", clip, `adoptProject: clips[${i}]`) }] as const),
    ];
    const editor = this.editor(local.id);
    const timeout = this.options.openTimeout ?? 5_000;
    const notFound = (error: unknown): boolean => error instanceof ClientClosed && error.code === CLOSE_NOT_FOUND;
    const mark = `${ADOPTING_KEY}${local.id.toLowerCase()}`;
    const cutShort = stored(this.storage, (storage) => storage.getItem(mark)) !== null;
    if (!cutShort) {
      try {
        await editor.connect(timeout);
        return { adopted: false, project: liveProject(editor) };
      } catch (error) {
        if (!notFound(error)) throw error;
      }
    }
    stored(this.storage, (storage) => storage.setItem(mark, new Date().toISOString()));
    const create = (): Promise<unknown> => repeated(() => this.http.createProject({ id: local.id, ...projectFields }));
    if (!cutShort) await create();
    const rowsBy = this.newEditor(local.id, randomUuid());
    try {
      try {
        await rowsBy.connect(timeout);
      } catch (error) {
        if (!(cutShort && notFound(error))) throw error;
        await create(); // the adoption cut short had not made the project yet
        await rowsBy.connect(timeout);
      }
      const missing = rows.filter(([table, row]) => !rowsBy.view.rows(table).has(row.id.toLowerCase()));
      const inserted = await Promise.allSettled(missing.map(([table, row]) => rowsBy.insert(table, row)));
      const refused = inserted.find((result) => result.status === "rejected");
      if (refused !== undefined) throw refused.reason;
      const flushed = await rowsBy.flush();
      await rowsBy.waitSaved(flushed.seq);
    } finally {
      rowsBy.close();
    }
    stored(this.storage, (storage) => storage.removeItem(mark));
    await editor.connect(timeout);
    return { adopted: true, project: liveProject(editor) };
  }

  // ---- scenes and clips ------------------------------------------------------------------------

  /**
   * Make the project's scene list equal to `scenes`, in this order: insert the new ones (a scene
   * without an `id` is new and gets one), patch the fields that differ, delete the ones not listed,
   * and index them by position. Resolves with the last acknowledgement (null when nothing changed).
   *
   * `scenes` may be a function of the scenes as they are when the call is sent (this client's edits
   * in flight included): a list built earlier, before an `await`, would delete the scenes other
   * editors added meanwhile and set back the fields they changed.
   */
  async syncScenes(projectId: string, scenes: SceneList): Promise<Ack | null> {
    return syncScenesOn(await this.open(projectId), scenes);
  }

  /**
   * Save one clip: insert it when the project does not have it (a missing `id` gets a new UUID, a
   * missing `orderIndex` puts it after the last clip), else patch the fields that differ. Resolves
   * with the clip's id and the acknowledgement (null when nothing changed).
   */
  async saveClip(projectId: string, clip: Partial<Clip>): Promise<{ id: string; ack: Ack | null }> {
    return saveClipOn(await this.open(projectId), clip);
  }

  /** Delete one clip. */
  async deleteClip(projectId: string, clipId: string): Promise<Ack> {
    return (await this.open(projectId)).delete("clips", clipId);
  }

  /** Put the clips in this order (`orderIndex` = position; unlisted clips follow). */
  async reorderClips(projectId: string, clipIds: string[]): Promise<Ack> {
    return (await this.open(projectId)).reorder("clips", clipIds);
  }

  /** Save the project now instead of after the daemon's debounce, and wait until the database has it. */
  async saveNow(projectId: string): Promise<void> {
    const editor = await this.open(projectId);
    const ack = await editor.flush();
    await editor.waitSaved(ack.seq);
  }

  // ---- voices and exports (HTTP API) -----------------------------------------------------------

  /** The user's voices; asked again while syncd restarts (see `repeated`), as the other voice calls are. */
  async listVoices(): Promise<Record<string, unknown>[]> {
    return (await repeated(() => this.http.listVoices())).map((row) => toCamel(row));
  }

  /** Create a voice (with an id of its own unless `fields` has one); tried again like `createProject`. */
  async createVoice(fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    const body = toSnake(fields);
    const row = { ...body, id: typeof body["id"] === "string" ? body["id"] : randomUuid() };
    return toCamel(await repeated(() => this.http.createVoice(row)));
  }

  /** Change a voice. */
  async updateVoice(voiceId: string, fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    const set = toSnake(fields);
    return toCamel(await repeated(() => this.http.updateVoice(voiceId, set)));
  }

  /** Delete a voice. */
  deleteVoice(voiceId: string): Promise<void> {
    return repeated(() => this.http.deleteVoice(voiceId), { gone: true });
  }

  /** A project's exports; asked again while syncd restarts. */
  async listExports(projectId: string): Promise<Record<string, unknown>[]> {
    return (await repeated(() => this.http.listExports(projectId))).map((row) => toCamel(row));
  }

  // ---- files -----------------------------------------------------------------------------------

  /**
   * A URL that shows a stored file now, for a `<video src>`: `fileUrl(clip.fileUrl)`. The signed URL
   * the renderer stored in the row expires (a week after the upload); this asks syncd for a new one of
   * the same file (valid 12 hours at least, asked once per file while it lasts). Any other URL (a
   * thumbnail's public one, another host's) comes back as it is, and none as null.
   *
   * @throws HttpError `404` for a file that is not stored, `403` for a project of another user.
   */
  fileUrl(url: string | null | undefined): Promise<string | null> {
    return this.files.fresh(url);
  }

  /** Request an export of a project. Not repeated: a repeat would start a second render. */
  async requestExport(projectId: string, fields: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return toCamel(await this.http.requestExport(projectId, toSnake(fields)));
  }
}

/** Seconds before each new try of an HTTP call that got no answer (see `repeated`). */
const RETRY_DELAYS = [0.5, 1, 2];

/**
 * Run an HTTP call, and run it again while syncd gives no answer or answers 503 (a restart takes
 * about two seconds under systemd). Only calls that can be repeated without a second effect come
 * here: reads, updates that set what they set, and creates whose row carries its id: the first try
 * may have made the row with its answer lost, and syncd answers a repeat with that row (docs/http.md,
 * "Sending a create again"), so a user's "New project" during a restart makes one project, not zero
 * or two. With `gone`, a delete whose repeat finds nothing (404) was done by an earlier try. Other
 * errors are the caller's at once.
 */
async function repeated<T>(call: () => Promise<T>, options: { gone?: boolean } = {}): Promise<T> {
  for (let tries = 0; ; tries += 1) {
    try {
      return await call();
    } catch (error) {
      if (options.gone === true && tries > 0 && error instanceof HttpError && error.status === 404) return undefined as T;
      const unanswered = error instanceof HttpError && (error.status === 0 || error.status === 503);
      const delay = RETRY_DELAYS[tries];
      if (!unanswered || delay === undefined) throw error;
      await new Promise((done) => setTimeout(done, delay * 1000));
    }
  }
}

/**
 * `SyncdStudio.syncScenes` on an open connection. Every row is built and checked before anything is
 * sent, so a list with one bad scene changes nothing.
 *
 * @throws TypeError naming the first bad scene by index and field.
 */
export async function syncScenesOn(
  editor: EditorClient,
  list: SceneList,
  call = "syncScenes",
  shown?: () => Scene[],
): Promise<Ack | null> {
  // Compared with the scenes as they will be once this client's edits in flight are in: against the
  // daemon's view alone, a scene inserted a moment ago would be inserted again, and a field set back
  // to its old value before the echo would not be sent. The daemon's ids are lower case; the
  // caller's may not be.
  const scenesNow = withPending(editor.view, editor.pending).scenes;
  const scenes = typeof list === "function" ? list(shown?.() ?? scenesNow.map((row) => toCamel<Scene>(row))) : list;
  if (!Array.isArray(scenes)) throw new TypeError(`${call}: expected a list of scenes, got ${typeof scenes}`);
  const live = new Map(scenesNow.map((row) => [row.id.toLowerCase(), row]));
  const wanted = new Set<string>();
  const sends: Array<() => Promise<Ack>> = [];
  scenes.forEach((scene, index) => {
    const where = `${call}: scenes[${index}]`;
    if (scene === null || typeof scene !== "object") throw new TypeError(`${where}: expected a scene object, got ${scene === null ? "null" : typeof scene}`);
    // A scene without an id is new (one a model just wrote, say), as for saveClip and the Python studio.
    if (scene.id !== undefined && !isUuid(scene.id)) throw new TypeError(`${where}.id: expected a UUID, got ${JSON.stringify(scene.id)}`);
    const id = scene.id?.toLowerCase() ?? randomUuid();
    if (wanted.has(id)) throw new TypeError(`${where}.id: ${id} is listed twice`);
    wanted.add(id);
    const fields = writable("scenes", { ...scene, sceneIndex: index }, where);
    checkFields("scenes", fields, where);
    const row = live.get(id);
    if (row === undefined) {
      sends.push(() => editor.insert("scenes", { id, ...fields }));
      return;
    }
    const changed = differing(row, fields);
    if (Object.keys(changed).length > 0) sends.push(() => editor.patch("scenes", row.id, changed));
  });
  const deletes = [...live].filter(([id]) => !wanted.has(id)).map(([, row]) => () => editor.delete("scenes", row.id));
  const acks = await Promise.all([...deletes, ...sends].map((send) => send()));
  return acks.at(-1) ?? null;
}

/** `SyncdStudio.saveClip` on an open connection. */
export async function saveClipOn(editor: EditorClient, clip: Partial<Clip>, call = "saveClip"): Promise<{ id: string; ack: Ack | null }> {
  const fields = writable("clips", clip, call);
  const id = typeof clip.id === "string" ? clip.id.toLowerCase() : randomUuid(); // the daemon's ids are lower case
  // The clips as they will be once this client's edits in flight are in (see syncScenesOn): calls
  // made at once each see the inserts of the ones before, so each takes the next free position.
  const clipsNow = withPending(editor.view, editor.pending).clips;
  const row = clipsNow.find((other) => other.id === id);
  if (row !== undefined) {
    const changed = differing(row, fields);
    return { id, ack: Object.keys(changed).length > 0 ? await editor.patch("clips", id, changed) : null };
  }
  if (fields["order_index"] !== undefined) return { id, ack: await editor.insert("clips", { id, ...fields }) };
  let position = 0;
  for (const other of clipsNow) position = Math.max(position, Number(other["order_index"] ?? 0) + 1);
  return { id, ack: await editor.insert("clips", { id, ...fields, order_index: position }) };
}

/** The fields of `fields` whose value differs from `row`'s (compared as JSON). */
function differing(row: Record<string, unknown>, fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).filter(([key, value]) => JSON.stringify(row[key] ?? null) !== JSON.stringify(value ?? null)),
  );
}
