/**
 * `useProjectSync`: the seed's React hook, a thin layer over `ProjectStore` (which holds all the
 * logic and works without React) through `useSyncExternalStore`.
 *
 * ```tsx
 * <SyncdProvider value={new SyncdStudio({ url: "http://127.0.0.1:8765" })}>
 *   <Editor projectId={id} />
 * </SyncdProvider>
 *
 * const { project, saveNow, isInitialLoad, saveStatus, editors } = useProjectSync({ projectId, autoSaveDelay: 1500 });
 * ```
 */

import { createContext, useContext, useEffect, useMemo, useState, useSyncExternalStore } from "react";

import { FILE_URL_SECONDS } from "./files.js";
import type { ReduxState } from "./rows.js";
import { ProjectStore, type ProjectSnapshot } from "./store.js";
import type { SyncdStudio } from "./studio.js";

/** The studio the hooks below it use; `SyncdProvider` is its provider. */
export const SyncdContext = createContext<SyncdStudio | null>(null);

/** Gives a `SyncdStudio` to every `useProjectSync` below it. */
export const SyncdProvider = SyncdContext.Provider;

/** The settings of `useProjectSync`. */
export interface UseProjectSyncOptions {
  projectId: string;
  /** Milliseconds of quiet after an edit before saving (default 1,500); null: the daemon's own debounce. A new value applies from the next edit, on the same store. */
  autoSaveDelay?: number | null;
  /** The studio to use instead of the one from `SyncdProvider`. */
  studio?: SyncdStudio;
  /** The Redux state to show the project from when syncd does not have it. */
  fallback?: ReduxState | null;
  /** A store made by the caller (it is then started and stopped by the caller, not the hook). */
  store?: ProjectStore;
}

/** What `useProjectSync` returns: the store's snapshot and its calls. */
export interface ProjectSync extends ProjectSnapshot {
  saveNow: ProjectStore["saveNow"];
  updateProject: ProjectStore["updateProject"];
  updateScene: ProjectStore["updateScene"];
  syncScenes: ProjectStore["syncScenes"];
  saveClip: ProjectStore["saveClip"];
  deleteClip: ProjectStore["deleteClip"];
  reorderClips: ProjectStore["reorderClips"];
  store: ProjectStore;
}

/** The live project `projectId`, its save status and the editors present; see the module's description. */
export function useProjectSync(options: UseProjectSyncOptions): ProjectSync {
  const fromContext = useContext(SyncdContext);
  const studio = options.studio ?? fromContext;
  const { projectId, autoSaveDelay, store: given } = options;
  const store = useMemo(() => {
    if (given !== undefined) return given;
    if (studio === null) throw new Error("useProjectSync: no SyncdStudio; wrap the tree in <SyncdProvider> or pass `studio`");
    return new ProjectStore({ projectId, studio, autoSaveDelay, fallback: options.fallback });
    // The fallback state is read once, at the first load: a new Redux state object must not reopen the project.
    // A new autoSaveDelay is handed to the store below: a new store would show the project loading again.
  }, [given, studio, projectId]);
  useEffect(() => {
    if (given === undefined) store.setAutoSaveDelay(autoSaveDelay);
  }, [store, given, autoSaveDelay]);
  useEffect(() => {
    if (given !== undefined) return undefined;
    void store.start();
    // The studio closes the connection only after this task and once its edits are answered, so a
    // store started again at once (StrictMode) or the next store on the same project keeps it, and
    // edits in flight are not reported failed.
    return store.stop;
  }, [store, given]);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return useMemo(
    () => ({
      ...snapshot,
      saveNow: store.saveNow,
      updateProject: store.updateProject,
      updateScene: store.updateScene,
      syncScenes: store.syncScenes,
      saveClip: store.saveClip,
      deleteClip: store.deleteClip,
      reorderClips: store.reorderClips,
      store,
    }),
    [snapshot, store],
  );
}

/**
 * A URL that shows a stored file now (see `SyncdStudio.fileUrl`): `<video src={useFileUrl(clip.fileUrl) ?? undefined}>`.
 * Null while it is first asked for, when there is none, and when syncd refused it (a file not
 * stored). A page left open is given a new one every 12 hours, before the one it shows expires.
 */
export function useFileUrl(url: string | null | undefined, studio?: SyncdStudio): string | null {
  const fromContext = useContext(SyncdContext);
  const using = studio ?? fromContext;
  if (using === null) throw new Error("useFileUrl: no SyncdStudio; wrap the tree in <SyncdProvider> or pass `studio`");
  const [shown, setShown] = useState<{ url: string | null | undefined; fresh: string | null }>({ url: undefined, fresh: null });
  const [renewals, setRenewals] = useState(0);
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    using.fileUrl(url).then(
      (fresh) => {
        if (!current) return;
        setShown({ url, fresh });
        if (fresh !== null && fresh !== url) timer = setTimeout(() => setRenewals((n) => n + 1), (FILE_URL_SECONDS / 2) * 1000);
      },
      () => current && setShown({ url, fresh: null }),
    );
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [using, url, renewals]);
  return shown.url === url ? shown.fresh : null;
}

export { ProjectStore, type ProjectSnapshot, type SaveStatus, type PresentEditor } from "./store.js";
