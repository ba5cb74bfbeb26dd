/**
 * Asking before the page is left while edits have not reached syncd. An edit is safe once syncd has
 * acknowledged it (it is in the daemon's journal, and saved from there); until then it lives only in
 * this page, and closing or reloading the page loses it: typed while offline, say, or sent a moment
 * before the tab is closed.
 */

/**
 * Have the browser ask before the page is closed or reloaded whenever `unsent()` is true. Returns what
 * stops it. Outside a browser page (Node, a worker) it does nothing.
 */
export function askBeforeLeaving(unsent: () => boolean): () => void {
  const page = globalThis as Partial<Pick<Window, "addEventListener" | "removeEventListener">>;
  if (typeof document === "undefined" || page.addEventListener === undefined) return () => undefined;
  const listener = (event: BeforeUnloadEvent): void => {
    if (!unsent()) return;
    event.preventDefault();
    event.returnValue = ""; // what browsers older than the standard's preventDefault() look at
  };
  page.addEventListener("beforeunload", listener);
  return () => page.removeEventListener?.("beforeunload", listener);
}
