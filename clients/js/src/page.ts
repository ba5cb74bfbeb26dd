/**
 * What the browser page tells the client, where there is one (in Node or a worker these functions do
 * nothing): that the user is leaving, that the network is back, that the page is shown again.
 */

type PageEvents = Partial<Pick<Window, "addEventListener" | "removeEventListener">>;

/** The page's window, or null outside a browser page. */
function page(): PageEvents | null {
  const scope = globalThis as PageEvents;
  return typeof document === "undefined" || scope.addEventListener === undefined ? null : scope;
}

/**
 * Have the browser ask before the page is closed or reloaded whenever `unsent()` is true. Returns what
 * stops it.
 *
 * An edit is safe once syncd has acknowledged it (it is in the daemon's journal, and saved from
 * there); until then it lives only in this page, and closing or reloading the page loses it: typed
 * while offline, say, or sent a moment before the tab is closed.
 */
export function askBeforeLeaving(unsent: () => boolean): () => void {
  const scope = page();
  if (scope === null) return () => undefined;
  const listener = (event: BeforeUnloadEvent): void => {
    if (!unsent()) return;
    event.preventDefault();
    event.returnValue = ""; // what browsers older than the standard's preventDefault() look at
  };
  scope.addEventListener!("beforeunload", listener);
  return () => scope.removeEventListener?.("beforeunload", listener);
}

/**
 * Call `back` when the browser reports the network back (`online`: Wi-Fi rejoined, a laptop woken
 * up). Returns what stops listening.
 */
export function whenOnline(back: () => void): () => void {
  const scope = page();
  if (scope === null) return () => undefined;
  scope.addEventListener!("online", back);
  return () => scope.removeEventListener?.("online", back);
}

/**
 * Call `back` when the page may have been away: shown again (a tab brought to the front, a laptop
 * woken up) or back online. Returns what stops listening.
 */
export function whenPageReturns(back: () => void): () => void {
  const scope = page();
  if (scope === null) return () => undefined;
  const shown = (): void => {
    if (document.visibilityState === "visible") back();
  };
  document.addEventListener("visibilitychange", shown);
  scope.addEventListener!("online", back);
  return () => {
    document.removeEventListener("visibilitychange", shown);
    scope.removeEventListener?.("online", back);
  };
}
