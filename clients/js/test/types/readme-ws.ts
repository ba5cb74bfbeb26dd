// The README's examples in Node, with the `ws` package's WebSocket: `npm test` compiles this file
// (tsc --noEmit) against the built declarations, so a WebSocket option type that `ws` does not fit
// fails the tests. Nothing here runs.

import { EditorClient, SyncdStudio } from "@omegaframe/syncd-client";
import WebSocket from "ws";

declare const projectId: string;
declare const sceneId: string;
declare const session: { access_token: string } | null;

export async function liveConnection(): Promise<void> {
  const editor = new EditorClient({ url: "http://127.0.0.1:8765", projectId, token: null, WebSocket });
  editor.on("change", (change) => console.log(change.seq, change.table, change.op, change.id));
  editor.on("event", ({ topic, data }) => console.log(topic, data));
  await editor.connect();
  const ack = await editor.patch("scenes", sceneId, { heading: "Nightfall" });
  await editor.waitSaved(ack.seq);
  console.log(editor.view.ordered("scenes"));
}

export async function studioCalls(otherClipIds: string[]): Promise<void> {
  const studio = new SyncdStudio({ url: "http://127.0.0.1:8765", token: session?.access_token ?? null, WebSocket });
  const created = await studio.createProject({ title: "Trailer", aspectRatio: "9:16" });
  const { project } = await studio.loadProject(created.id as string, { projects: [] });
  await studio.updateProject(project.id, { title: "Trailer, cut 2" });
  const { id } = await studio.saveClip(project.id, { sceneId, prompt: "a lighthouse at dusk" });
  await studio.reorderClips(project.id, [id, ...otherClipIds]);
  await studio.saveNow(project.id);
}
