// The README's live connection in a browser: the DOM's WebSocket, passed explicitly and left out.
// Compiled by `npm test` (tsc --noEmit); nothing here runs.

import { EditorClient, SyncdStudio } from "@omegaframe/syncd-client";

declare const projectId: string;

export async function inABrowser(): Promise<void> {
  const explicit = new EditorClient({ url: "http://127.0.0.1:8765", projectId, WebSocket: globalThis.WebSocket });
  const implicit = new EditorClient({ url: "http://127.0.0.1:8765", projectId });
  const studio = new SyncdStudio({ url: "http://127.0.0.1:8765", WebSocket: window.WebSocket });
  await Promise.all([explicit.connect(), implicit.connect(), studio.open(projectId)]);
}
