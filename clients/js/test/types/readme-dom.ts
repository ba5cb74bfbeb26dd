// The README's live connection in a browser (the DOM's WebSocket, passed explicitly and left out), and
// its React preview of a stored clip.
// Compiled by `npm test` (tsc --noEmit); nothing here runs.

import { type Clip, EditorClient, SyncdStudio } from "@omegaframe/syncd-client";
import { useFileUrl } from "@omegaframe/syncd-client/react";
import { createElement } from "react";

declare const projectId: string;

export async function inABrowser(): Promise<void> {
  const explicit = new EditorClient({ url: "http://127.0.0.1:8765", projectId, WebSocket: globalThis.WebSocket });
  const implicit = new EditorClient({ url: "http://127.0.0.1:8765", projectId });
  const studio = new SyncdStudio({ url: "http://127.0.0.1:8765", WebSocket: window.WebSocket });
  // The browser's own storage and locks fit the options they are the defaults of.
  new SyncdStudio({ url: "http://127.0.0.1:8765", storage: window.localStorage, locks: navigator.locks }).close();
  await Promise.all([explicit.connect(), implicit.connect(), studio.open(projectId)]);
}

/** The README's `ClipPreview`, without JSX. */
export function ClipPreview({ clip }: { clip: Clip }) {
  const src = useFileUrl(clip.fileUrl);
  return src === null ? createElement("p", null, "Loading clip…") : createElement("video", { src, controls: true });
}
