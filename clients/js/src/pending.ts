/**
 * The live view as this client's user must see it: the server's view with the client's own
 * unacknowledged mutations applied on top, in the order they were made.
 *
 * `ProjectView` holds only what the server sent, so an edit shows there once its change comes back,
 * a round trip later. A screen that renders from it, such as a React `<input value={scene.heading}>`,
 * shows the old value until then, and React puts the old value back into the field after each
 * keystroke: the next keystroke, typed before the echo, then starts from the old value, and the
 * keystrokes in between are lost for good (each patch carries the whole field). Showing pending
 * edits at once closes that window. Once a mutation is acknowledged its change is in the server's
 * view; a refused one is dropped and the server's value shows again.
 */

import type { Frame, Row } from "./frames.js";
import { orderedRows, type ProjectView, type ViewData } from "./view.js";
import { ORDER_FIELD, type ChildTable } from "./wire.js";

/** `view` with `pending` (mutation frames, oldest first) applied; the view itself is left as it is. */
export function withPending(view: ProjectView, pending: readonly Frame[]): ViewData {
  if (pending.length === 0) return view.asData();
  let project = view.project;
  // The maps are copies; their rows are the view's own objects until a mutation replaces one, so
  // rows no pending edit touches keep their identity for memoized components.
  const rows: Record<ChildTable, Map<string, Row>> = { scenes: new Map(view.scenes), clips: new Map(view.clips) };
  for (const frame of pending) {
    const table = frame["table"];
    if (table === "projects") {
      if (frame["type"] === "patch" && project !== null && project.id === frame["id"]) {
        project = { ...project, ...(frame["set"] as Record<string, unknown>) };
      }
    } else if (table === "scenes" || table === "clips") {
      apply(rows[table], table, frame);
    }
  }
  return {
    project,
    scenes: orderedRows(rows.scenes.values(), ORDER_FIELD.scenes),
    clips: orderedRows(rows.clips.values(), ORDER_FIELD.clips),
  };
}

/** One mutation on the rows of a child table, as the daemon applies it (docs/protocol.md §3). */
function apply(rows: Map<string, Row>, table: ChildTable, frame: Frame): void {
  switch (frame["type"]) {
    case "patch": {
      const id = frame["id"] as string;
      const row = rows.get(id);
      if (row !== undefined) rows.set(id, { ...row, ...(frame["set"] as Record<string, unknown>) });
      return;
    }
    case "insert": {
      const row = frame["row"] as Row;
      if (!rows.has(row.id)) rows.set(row.id, { ...row });
      return;
    }
    case "delete":
      rows.delete(frame["id"] as string);
      return;
    case "reorder":
      reorder(rows, ORDER_FIELD[table], frame["ids"] as string[]);
      return;
  }
}

/** The listed rows take positions 0, 1, 2, …; the others keep their relative order and follow. */
function reorder(rows: Map<string, Row>, field: string, ids: string[]): void {
  if (!ids.every((id) => rows.has(id))) return; // the daemon refuses it whole (not_found)
  const first = new Set(ids);
  const rest = orderedRows(rows.values(), field).filter((row) => !first.has(row.id));
  [...ids.map((id) => rows.get(id)!), ...rest].forEach((row, position) => {
    if (row[field] !== position) rows.set(row.id, { ...row, [field]: position });
  });
}
