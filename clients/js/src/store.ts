/**
 * `ProjectStore`: one project's live state for a UI, framework-free, with `subscribe` and
 * `getSnapshot` in the shape React's `useSyncExternalStore` expects (any other framework can use it
 * the same way). It adds what an editor screen needs on top of `EditorClient`: the project as the
 * frontend keeps it (camelCase), whether the first load is still going on, a save status, the editors
 * present, and saving after `autoSaveDelay` of quiet (the seed's auto-save).
 */

import type { Ack, ConnectionStatus, EditorClient } from "./client.js";
import type { Unsubscribe } from "./emitter.js";
import { ClientClosed, TimeoutError } from "./errors.js";
import { type Clip, type Project, type ReduxState, type Scene, type StudioProject, findLocalProject, toCamel, toSnake, writable } from "./rows.js";
import { saveClipOn, type SceneList, syncScenesOn, type SyncdStudio } from "./studio.js";
import type { Frame, Row } from "./frames.js";
import { withPending } from "./pending.js";
import { ProjectView, type ViewData } from "./view.js";
import { CLOSE_NOT_FOUND } from "./wire.js";

/**
 * `saved`: every edit of this client is in the database; `unsaved`: some are not (yet); `saving`: a
 * save was asked for and is under way; `error`: the daemon reported that it could not save (it keeps
 * retrying) or refused an edit, and edits are still unsaved.
 */
export type SaveStatus = "saved" | "unsaved" | "saving" | "error";

/** Someone who has the project open. */
export interface PresentEditor {
  clientId: string;
  userId: string | null;
}

/** What `getSnapshot` returns; a new object whenever anything in it changed, else the same one. */
export interface ProjectSnapshot {
  projectId: string;
  /**
   * The live project with its scenes and clips in order, or null before the first load. This
   * client's own edits show in it at once, before the daemon acknowledges them (see `pending.ts`); an
   * edit the daemon refuses disappears again.
   */
  project: StudioProject | null;
  /**
   * True until the project is first shown (from syncd, or from the fallback state), or until the
   * first load failed for good (4404 without a fallback, 4401, ...: `error` says why). While syncd
   * cannot be reached the store keeps trying and this stays true, with `error` set.
   */
  isInitialLoad: boolean;
  /**
   * Where `project` came from: the live project, or the Redux state while syncd does not have it or
   * cannot be reached. The live project replaces the local one as soon as the connection joins.
   */
  source: "syncd" | "local" | null;
  saveStatus: SaveStatus;
  connection: ConnectionStatus;
  /** The editors that have the project open, this one included. */
  editors: PresentEditor[];
  seq: number;
  savedSeq: number;
  /** The daemon's time of the last save it reported (ISO-8601), or null. */
  lastSavedAt: string | null;
  /**
   * The last error: a failed first load (cleared once the project is live), a refused edit, a failed
   * save or edits waiting for room on the daemon's disk (both cleared by the next save that leaves
   * none of this client's edits waiting), a connection closed for good.
   */
  error: Error | null;
}

/** The settings of a `ProjectStore`. */
export interface ProjectStoreOptions {
  projectId: string;
  /** The studio whose connection to the project the store uses (it is acquired on `start`, released on `stop`). */
  studio?: SyncdStudio;
  /** Or a connection of the caller's own (left open on `stop`). */
  editor?: EditorClient;
  /** Milliseconds of quiet after an edit before the store asks the daemon to save (default 1,500); null: the daemon's own debounce. See `setAutoSaveDelay`. */
  autoSaveDelay?: number | null;
  /** The Redux state to load the project from when syncd does not have it or cannot be reached. */
  fallback?: ReduxState | null;
  /** Milliseconds for the first load from syncd before falling back (default 5,000). */
  loadTimeout?: number;
}

/** One project's live state for a UI; see the module's description. */
export class ProjectStore {
  readonly projectId: string;
  private readonly options: ProjectStoreOptions;
  private editorValue: EditorClient | null = null;
  private readonly listeners = new Set<() => void>();
  private unsubscribers: Unsubscribe[] = [];
  private snapshot: ProjectSnapshot;
  private readonly camelRows = new WeakMap<object, unknown>();
  private local: StudioProject | null = null;
  private loaded = false;
  private loadError: Error | null = null;
  private autoSaveDelay: number | null;
  /** Raised by every start and stop: what a stopped start finishes late (its load, its edits) is ignored. */
  private generation = 0;
  private ownSeq = 0;
  private savingSeq: number | null = null;
  private saveError: Error | null = null;
  private lastError: Error | null = null;
  private epoch: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private started = false;
  /** What `withPendingEdits` last built, and from what: the rows under it, the view's epoch, seq and snapshots, the pending frames. */
  private pendingKey: unknown[] = [];
  private pendingData: ViewData | null = null;
  private snapshots = 0;
  private localRows: { local: StudioProject; view: ProjectView } | null = null;

  constructor(options: ProjectStoreOptions) {
    if (options.studio === undefined && options.editor === undefined) {
      throw new TypeError("ProjectStore: pass a studio or an editor");
    }
    this.options = options;
    this.projectId = options.projectId;
    this.autoSaveDelay = options.autoSaveDelay === undefined ? 1_500 : options.autoSaveDelay;
    this.snapshot = this.build();
  }

  /** The connection the store uses (null before `start` when it comes from a studio). */
  get editor(): EditorClient | null {
    return this.editorValue;
  }

  // ---- the useSyncExternalStore contract -------------------------------------------------------

  /** Call `listener` after every change of the snapshot; returns what removes it. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** The current state; the same object until something in it changes. */
  getSnapshot = (): ProjectSnapshot => this.snapshot;

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Open the project and follow it; resolves once the first load is over: the project is live, or
   * shown from the fallback, or the load failed (`error` says why; the store goes on trying unless
   * the failure is for good). Idempotent.
   */
  start = (): Promise<void> => {
    if (this.started) return this.loading ?? Promise.resolve();
    this.started = true;
    const generation = ++this.generation;
    const editor = this.options.editor ?? this.options.studio!.acquire(this.projectId);
    this.editorValue = editor;
    this.unsubscribers = [
      editor.on("joined", () => this.onLive()),
      editor.on("view", () => this.update()),
      editor.on("presence", () => this.update()),
      editor.on("status", () => this.update()),
      editor.on("snapshot", (event) => this.onSnapshot(event.epoch)),
      editor.on("saved", () => this.onSaved()),
      editor.on("error", (error) => this.fail(error, error.code === "unavailable")),
      editor.on("disconnected", (event) => {
        if (event.final) this.fail(new ClientClosed(event.code, event.reason), false);
      }),
    ];
    this.loading = this.load(editor, generation);
    return this.loading;
  };

  private loading: Promise<void> | null = null;

  /** Stop following the project: listeners stay, the connection is released (or left to its owner). */
  stop = (): void => {
    if (!this.started) return;
    this.started = false;
    this.generation += 1;
    this.loading = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    if (this.options.editor === undefined) this.options.studio!.release(this.projectId);
    this.update();
  };

  private async load(editor: EditorClient, generation: number): Promise<void> {
    try {
      await editor.connect(this.options.loadTimeout ?? 5_000);
    } catch (error) {
      if (generation !== this.generation || editor.status === "live") return;
      const local = findLocalProject(this.options.fallback, this.projectId);
      const fallback = (error instanceof ClientClosed && error.code === CLOSE_NOT_FOUND) || error instanceof TimeoutError;
      if (local !== null && fallback) {
        this.local = local;
        this.loaded = true;
        // Edits made on the copy wait in the closed connection until the adoption opens it again.
        if (error instanceof ClientClosed) editor.keepEditsForReopen();
      } else {
        this.lastError = this.loadError = error as Error;
        // A connection closed for good will not join later: the UI must be able to leave its loading state.
        if (error instanceof ClientClosed) this.loaded = true;
      }
      this.update();
      return;
    }
    // An editor that was live already joined before the store listened.
    if (generation === this.generation) this.onLive();
  }

  /** The connection joined, now or after failed attempts: the live project replaces any local copy. */
  private onLive(): void {
    this.loaded = true;
    this.local = null;
    if (this.loadError !== null && this.lastError === this.loadError) this.lastError = null;
    this.loadError = null;
    this.update();
  }

  /**
   * Change the quiet time before auto-save (null: the daemon's own debounce), from the next edit on;
   * the connection and any edit in flight are not touched.
   */
  setAutoSaveDelay = (delay: number | null = 1_500): void => {
    this.autoSaveDelay = delay;
  };

  // ---- edits -----------------------------------------------------------------------------------

  // Every call below returns a promise and never throws: a misuse (no start() yet, a field that is
  // not editable, a value JSON cannot carry) rejects it, so a `.catch()` sees it.

  /** Change fields of the project (camelCase or snake_case keys; an unknown field is refused). */
  updateProject = (fields: Partial<Project>): Promise<Ack> =>
    this.track((editor) => editor.patch("projects", this.projectId, writable("projects", fields, "updateProject")));

  /** Change fields of one scene. */
  updateScene = (sceneId: string, fields: Partial<Scene>): Promise<Ack> =>
    this.track((editor) => editor.patch("scenes", sceneId, writable("scenes", fields, `updateScene ${sceneId}`)));

  /**
   * Make the scene list equal to `scenes`, in this order (see `SyncdStudio.syncScenes`); a function
   * gets the scenes this store shows when the call is made.
   */
  syncScenes = (scenes: SceneList): Promise<Ack | null> =>
    this.track((editor) => syncScenesOn(editor, scenes, "syncScenes", () => this.getSnapshot().project?.scenes ?? []));

  /** Insert or update one clip (see `SyncdStudio.saveClip`). */
  saveClip = (clip: Partial<Clip>): Promise<{ id: string; ack: Ack | null }> =>
    this.track((editor) => saveClipOn(editor, clip));

  /** Delete one clip. */
  deleteClip = (clipId: string): Promise<Ack> => this.track((editor) => editor.delete("clips", clipId));

  /** Put the clips in this order. */
  reorderClips = (clipIds: string[]): Promise<Ack> => this.track((editor) => editor.reorder("clips", clipIds));

  /** Save now (the seed's `saveNow()`): resolves once the database has every edit made so far. */
  saveNow = async (): Promise<void> => {
    const editor = this.requireEditor();
    const generation = this.generation;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const flush = editor.flush();
    this.savingSeq = Number.MAX_SAFE_INTEGER; // saving from now on, until the flush's seq is saved
    this.update();
    try {
      const ack = await flush;
      if (generation === this.generation) {
        this.ownSeq = Math.max(this.ownSeq, ack.seq);
        this.savingSeq = ack.seq;
      }
      await editor.waitSaved(ack.seq);
    } catch (error) {
      if (generation === this.generation) this.fail(error as Error, true);
      throw error;
    } finally {
      if (generation === this.generation) {
        this.savingSeq = null;
        this.update();
      }
    }
  };

  // ---- internals -------------------------------------------------------------------------------

  private requireEditor(): EditorClient {
    if (this.editorValue === null || !this.started) throw new Error(`ProjectStore ${this.projectId}: call start() first`);
    return this.editorValue;
  }

  /** Run one edit: its ack raises the seq this client waits to see saved, and the auto-save timer restarts. */
  private track<T>(run: (editor: EditorClient) => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      promise = run(this.requireEditor());
    } catch (error) {
      return Promise.reject(error);
    }
    const generation = this.generation;
    this.update(); // the edit is unacked now: unsaved
    this.scheduleSave();
    promise.then(
      (result) => {
        if (generation !== this.generation) return;
        const seqs = [result]
          .flat()
          .map((value) => (value !== null && typeof value === "object" && "ack" in value ? value.ack : value))
          .filter((value): value is Ack => value !== null && typeof value === "object" && "seq" in value);
        for (const ack of seqs) this.ownSeq = Math.max(this.ownSeq, ack.seq);
        this.update();
      },
      (error: Error) => {
        if (generation === this.generation) this.fail(error, false);
      },
    );
    return promise;
  }

  private scheduleSave(): void {
    const delay = this.autoSaveDelay;
    if (delay === null || delay <= 0) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.started) this.saveNow().catch(() => undefined); // fail() has recorded it
    }, delay);
  }

  private onSnapshot(epoch: string): void {
    // Seqs of another epoch do not compare: edits acknowledged before a daemon restart are saved by
    // the restarted daemon (it replays its journal), so what is left to wait for is the new view's seq.
    if (this.epoch !== null && epoch !== this.epoch && this.ownSeq > 0) this.ownSeq = this.editorValue!.seq;
    this.epoch = epoch;
    this.snapshots += 1; // a snapshot may replace rows without moving the seq (a diverged view)
    this.update();
  }

  private onSaved(): void {
    // A failed save, or edits that wait for room on the daemon's disk, is over once a save comes with
    // none of this client's edits waiting; a save of others' edits meanwhile does not end it.
    if ((this.editorValue?.unacked.length ?? 0) === 0) {
      if (this.lastError === this.saveError) this.lastError = null;
      this.saveError = null;
    }
    this.update();
  }

  private fail(error: Error, saving: boolean): void {
    this.lastError = error;
    if (saving) this.saveError = error;
    this.update();
  }

  private saveStatus(editor: EditorClient | null): SaveStatus {
    if (editor === null) return "saved";
    const pending = editor.unacked.length > 0 || this.ownSeq > editor.savedSeq;
    if (!pending) return "saved";
    if (this.saveError !== null) return "error";
    if (this.savingSeq !== null) return "saving";
    return "unsaved";
  }

  private camel<T>(row: Row): T {
    let camel = this.camelRows.get(row) as T | undefined;
    if (camel === undefined) {
      camel = toCamel<T>(row);
      this.camelRows.set(row, camel);
    }
    return camel;
  }

  /**
   * The rows to show with this client's unacknowledged edits applied (see `pending.ts`), over the
   * live view or, while it is shown instead, the Redux copy: edits made while syncd cannot be reached
   * wait in the client and must show too. The same object while neither the rows under it nor the
   * pending edits changed, so unrelated updates (presence, the connection's status) do not hand
   * React new rows.
   */
  private withPendingEdits(editor: EditorClient, base: ProjectView, pending: Frame[]): ViewData {
    if (pending.length === 0) return base.asData();
    const key = [base, editor.protocol.epoch, editor.seq, this.snapshots, ...pending];
    const same = this.pendingData !== null && key.length === this.pendingKey.length && key.every((part, i) => part === this.pendingKey[i]);
    if (!same) {
      this.pendingData = withPending(base, pending);
      this.pendingKey = key;
    }
    return this.pendingData!;
  }

  /** The Redux copy as a view (snake_case rows, lower-case ids, as the daemon's), made once per copy. */
  private localView(local: StudioProject): ProjectView {
    if (this.localRows?.local !== local) {
      const view = new ProjectView();
      const row = (fields: object): Row => {
        const snake = toSnake(fields as Record<string, unknown>);
        return { ...snake, id: String(snake["id"]).toLowerCase() };
      };
      const { scenes, clips, ...fields } = local;
      view.reset(row(fields), scenes.map(row), clips.map(row));
      this.localRows = { local, view };
    }
    return this.localRows.view;
  }

  private build(): ProjectSnapshot {
    const editor = this.editorValue;
    let project: StudioProject | null = this.local;
    const base = this.local !== null ? this.localView(this.local) : editor?.view.project != null ? editor.view : null;
    const pending = editor?.pending ?? [];
    if (editor !== null && base !== null && (this.local === null || pending.length > 0)) {
      const data = this.withPendingEdits(editor, base, pending);
      project = {
        ...this.camel<Project>(data.project!),
        scenes: data.scenes.map((row) => this.camel<Scene>(row)),
        clips: data.clips.map((row) => this.camel<Clip>(row)),
      };
    }
    return {
      projectId: this.projectId,
      project,
      isInitialLoad: !this.loaded,
      source: !this.loaded ? null : this.local !== null ? "local" : project !== null ? "syncd" : null,
      saveStatus: this.saveStatus(editor),
      connection: editor?.status ?? "new",
      editors: (editor?.editors ?? []).map((entry) => ({
        clientId: String(entry["client_id"]),
        userId: typeof entry["user_id"] === "string" ? entry["user_id"] : null,
      })),
      seq: editor?.seq ?? 0,
      savedSeq: editor?.savedSeq ?? 0,
      lastSavedAt: editor?.protocol.lastSaved?.at ?? null,
      error: this.lastError,
    };
  }

  /** Rebuild the snapshot; tell the listeners when anything in it changed. */
  private update(): void {
    const next = this.build();
    if (sameSnapshot(this.snapshot, next)) return;
    this.snapshot = next;
    for (const listener of [...this.listeners]) listener();
  }
}

function sameSnapshot(a: ProjectSnapshot, b: ProjectSnapshot): boolean {
  return (
    a.project === b.project ||
    (a.project !== null &&
      b.project !== null &&
      shallowSame(a.project, b.project, ["scenes", "clips"]) &&
      sameList(a.project.scenes, b.project.scenes) &&
      sameList(a.project.clips, b.project.clips))
  )
    ? a.isInitialLoad === b.isInitialLoad &&
        a.source === b.source &&
        a.saveStatus === b.saveStatus &&
        a.connection === b.connection &&
        JSON.stringify(a.editors) === JSON.stringify(b.editors) &&
        a.seq === b.seq &&
        a.savedSeq === b.savedSeq &&
        a.lastSavedAt === b.lastSavedAt &&
        a.error === b.error
    : false;
}

function sameList(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

function shallowSame(a: Record<string, unknown>, b: Record<string, unknown>, skip: string[]): boolean {
  const keys = Object.keys(a).filter((key) => !skip.includes(key));
  return keys.length === Object.keys(b).filter((key) => !skip.includes(key)).length && keys.every((key) => a[key] === b[key]);
}
