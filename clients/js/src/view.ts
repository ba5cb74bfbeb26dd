/** The client's copy of one project's live rows, built only from what the server sends. */

import type { Frame, Row } from "./frames.js";
import { ORDER_FIELD, type ChildTable, type Table } from "./wire.js";

/** The view as plain data: the project row and the rows of each table in the editor's order. */
export interface ViewData {
  project: Row | null;
  scenes: Row[];
  clips: Row[];
}

function orderValue(row: Row, field: string): number {
  const value = row[field];
  return typeof value === "number" ? value : 0;
}

/** `rows` in the editor's order: by `field` (`scene_index` / `order_index`), then id. */
export function orderedRows(rows: Iterable<Row>, field: string): Row[] {
  return [...rows].sort((a, b) => {
    const byOrder = orderValue(a, field) - orderValue(b, field);
    if (byOrder !== 0) return byOrder;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

/**
 * The client's copy of one project's live rows, built from `snapshot` and `change` frames.
 *
 * `project` is the project row (null before the first snapshot); `scenes` and `clips` map row ids to
 * rows. The rows are the client's own objects: read them, don't change them.
 */
export class ProjectView {
  project: Row | null = null;
  scenes = new Map<string, Row>();
  clips = new Map<string, Row>();
  /** Rows of the stream's other tables (`exports`, `audio_files`, ...), by table and id. */
  sides = new Map<string, Map<string, Row>>();

  /** The rows of `table` by id (for `projects`: the project row, if any). */
  rows(table: Table): Map<string, Row> {
    if (table === "scenes") return this.scenes;
    if (table === "clips") return this.clips;
    return this.project === null ? new Map() : new Map([[String(this.project.id), this.project]]);
  }

  /** The rows of `table` in the editor's order: by `scene_index` / `order_index`, then id. */
  ordered(table: ChildTable): Row[] {
    return orderedRows(this.rows(table).values(), ORDER_FIELD[table]);
  }

  /** The view as `{project, scenes, clips}` with ordered row lists, to compare or render views. */
  asData(): ViewData {
    return { project: this.project, scenes: this.ordered("scenes"), clips: this.ordered("clips") };
  }

  /** Replace the whole view, as a `snapshot` does. */
  reset(
    project: Record<string, unknown> | null,
    scenes: Iterable<Row>,
    clips: Iterable<Row>,
    sides: Record<string, Iterable<Row>> = {},
  ): void {
    this.project = project !== null ? ({ ...project } as Row) : null;
    this.scenes = new Map([...scenes].map((row) => [String(row.id), { ...row }]));
    this.clips = new Map([...clips].map((row) => [String(row.id), { ...row }]));
    this.sides = new Map(
      Object.entries(sides).map(([table, rows]) => [table, new Map([...rows].map((r) => [String(r.id), { ...r }]))]),
    );
  }

  /**
   * Apply one checked `change` frame.
   *
   * Returns false when the change does not fit the view (an update of a row the view does not hold),
   * which means the view has diverged from the server's; true otherwise.
   *
   * Rows are replaced, never changed in place, so that a caller holding an old row (a React render)
   * sees a new object for every changed row.
   */
  apply(change: Frame): boolean {
    const table = change["table"] as Table;
    const op = change["op"] as string;
    const id = change["id"] as string;
    if (table === "projects") return this.applyToProject(op, id, change);
    if (table !== "scenes" && table !== "clips") {
      this.applyAside(table, op, id, change);
      return true;
    }
    const rows = table === "scenes" ? this.scenes : this.clips;
    if (op === "insert") {
      rows.set(id, { ...(change["row"] as Record<string, unknown>), id });
    } else if (op === "update") {
      const row = rows.get(id);
      if (row === undefined) return false;
      rows.set(id, { ...row, ...(change["set"] as Record<string, unknown>) });
    } else {
      rows.delete(id);
    }
    return true;
  }

  /** A change of a table the client does not sync: kept, and never a sign of divergence. */
  private applyAside(table: string, op: string, id: string, change: Frame): void {
    let rows = this.sides.get(table);
    if (rows === undefined) {
      rows = new Map();
      this.sides.set(table, rows);
    }
    if (op === "insert") rows.set(id, { ...(change["row"] as Record<string, unknown>), id });
    else if (op === "update") rows.set(id, { ...(rows.get(id) ?? { id }), ...(change["set"] as Record<string, unknown>) });
    else rows.delete(id);
  }

  private applyToProject(op: string, id: string, change: Frame): boolean {
    if (op === "insert") {
      this.project = { ...(change["row"] as Record<string, unknown>), id };
    } else if (op === "update") {
      if (this.project === null || this.project.id !== id) return false;
      this.project = { ...this.project, ...(change["set"] as Record<string, unknown>) };
    } else if (this.project !== null && this.project.id === id) {
      this.project = null;
    }
    return true;
  }
}
