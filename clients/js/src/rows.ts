/**
 * Rows as the studio's frontend keeps them (camelCase keys) and as syncd sends them (snake_case, the
 * database's column names), and which fields an editor may write.
 */

import { checkJson, withCommas } from "./frames.js";
import { UUID_PATTERN } from "./ids.js";
import type { Table } from "./wire.js";

/** The fields an editor may set with `patch` or `insert` (docs/protocol.md §5). */
export const EDITABLE_FIELDS: Readonly<Record<Table, ReadonlySet<string>>> = {
  projects: new Set(["title", "script", "status", "aspect_ratio", "settings"]),
  scenes: new Set(["scene_index", "heading", "body", "duration", "voice_id"]),
  clips: new Set([
    "scene_id",
    "provider",
    "prompt",
    "file_url",
    "thumbnail_url",
    "status",
    "duration",
    "trim_start",
    "trim_end",
    "order_index",
    "metadata",
  ]),
};

/** `aspectRatio` → `aspect_ratio`; a snake_case name stays as it is. */
export function snakeName(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** `aspect_ratio` → `aspectRatio`. */
export function camelName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** The row with snake_case keys (top level only: `settings` and `metadata` keep their own keys). */
export function toSnake(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([key, value]) => [snakeName(key), value]));
}

/** The row with camelCase keys (top level only). */
export function toCamel<T = Record<string, unknown>>(row: Record<string, unknown>): T {
  return Object.fromEntries(Object.entries(row).map(([key, value]) => [camelName(key), value])) as T;
}

/** Only the fields of `row` (snake_case) that an editor may write to `table`. */
export function editable(table: Table, row: Record<string, unknown>): Record<string, unknown> {
  const fields = EDITABLE_FIELDS[table];
  return Object.fromEntries(Object.entries(row).filter(([key, value]) => fields.has(key) && value !== undefined));
}

/** The columns only the database sets (§5); rows read from syncd carry them, so writes leave them out. */
export const READ_ONLY_FIELDS: ReadonlySet<string> = new Set(["id", "project_id", "user_id", "created_at", "updated_at", "version"]);

const ROW_NAME: Readonly<Record<Table, string>> = { projects: "a project", scenes: "a scene", clips: "a clip" };

/**
 * The fields of `row` (camelCase or snake_case keys) to write to `table`, snake_case, without the
 * read-only columns and the `undefined` values.
 *
 * @param where the call and the row, for the error (`updateProject`, `syncScenes: scenes[2]`).
 * @throws TypeError naming every field that is neither editable nor read-only, and the editable ones.
 */
export function writable(table: Table, row: Record<string, unknown>, where: string): Record<string, unknown> {
  const allowed = EDITABLE_FIELDS[table];
  const unknown = Object.keys(row).filter((key) => !allowed.has(snakeName(key)) && !READ_ONLY_FIELDS.has(snakeName(key)));
  if (unknown.length > 0) {
    const names = unknown.map((key) => JSON.stringify(key));
    const which = names.length === 1 ? `${names[0]} is not a field` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are not fields`;
    const fields = [...allowed].map(camelName);
    throw new TypeError(
      `${where}: ${which} of ${ROW_NAME[table]}; an editor may write ${fields.slice(0, -1).join(", ")} and ${fields.at(-1)}`,
    );
  }
  return editable(table, toSnake(row));
}

/** Whether `value` is a UUID in its text form, in either case (as the daemon accepts it). */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}

const MAX_INDEX = 2 ** 31 - 1;

type Rule = (value: unknown) => string | null;

const text =
  (max: number, nullable = false): Rule =>
  (value) => {
    if (value === null && nullable) return null;
    if (typeof value !== "string") return `expected text${nullable ? " or null" : ""}, got ${describe(value)}`;
    // The daemon counts characters (code points), not UTF-16 units.
    if (value.length > max && [...value].length > max) return `at most ${withCommas(max)} characters, got ${withCommas([...value].length)}`;
    return null;
  };
const oneOf =
  (...values: string[]): Rule =>
  (value) =>
    typeof value === "string" && values.includes(value) ? null : `expected one of ${values.join(", ")}, got ${describe(value)}`;
const seconds =
  (nullable = false): Rule =>
  (value) => {
    if (value === null && nullable) return null;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      return `expected seconds (a number, 0 or more)${nullable ? " or null" : ""}, got ${describe(value)}`;
    }
    return null;
  };
const index: Rule = (value) =>
  Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_INDEX
    ? null
    : `expected a whole number from 0 to ${MAX_INDEX}, got ${describe(value)}`;
const uuidOrNull: Rule = (value) => (value === null || isUuid(value) ? null : `expected a UUID or null, got ${describe(value)}`);
const jsonObject: Rule = (value) => {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return `expected an object, got ${describe(value)}`;
  try {
    checkJson(value, "value");
  } catch (error) {
    return (error as Error).message.replace(/^value/, "a part");
  }
  return null;
};

/** The types and limits of the editable fields, as the daemon checks them (§5 of docs/protocol.md, syncd/rows.py). */
const RULES: Readonly<Record<Table, Readonly<Record<string, Rule>>>> = {
  projects: {
    title: text(500),
    script: text(100_000),
    status: oneOf("draft", "generating", "ready", "exporting", "archived"),
    aspect_ratio: oneOf("16:9", "9:16", "1:1", "4:5"),
    settings: jsonObject,
  },
  scenes: { scene_index: index, heading: text(500), body: text(100_000), duration: seconds(), voice_id: uuidOrNull },
  clips: {
    scene_id: uuidOrNull,
    provider: text(200),
    prompt: text(100_000),
    file_url: text(2_000, true),
    thumbnail_url: text(2_000, true),
    status: oneOf("pending", "generating", "ready", "failed"),
    duration: seconds(),
    trim_start: seconds(),
    trim_end: seconds(true),
    order_index: index,
    metadata: jsonObject,
  },
};

/**
 * Check the values of `fields` (snake_case, editable fields only, as `writable` returns them) the way
 * the daemon will, so that a call sending several rows can refuse them all before sending any.
 *
 * @throws TypeError naming `where`, the field (camelCase) and what is wrong with its value.
 */
export function checkFields(table: Table, fields: Record<string, unknown>, where: string): void {
  for (const [name, value] of Object.entries(fields)) {
    const rule = RULES[table][name]?.(value) ?? null;
    const problem = unstorable(value, "") ?? (rule === null ? null : `: ${rule}`);
    if (problem !== null) throw new TypeError(`${where}.${camelName(name)}${problem}`);
  }
}

/**
 * What the daemon refuses at any depth of any field (syncd/rows.py `check_json`): a NUL character,
 * which PostgreSQL's text and jsonb cannot hold, and an integer beyond JavaScript's safe range.
 * Returns `.path: problem` (the path empty for the value itself), or null.
 */
function unstorable(value: unknown, path: string): string | null {
  if (typeof value === "string") {
    const at = value.indexOf("\u0000");
    return at < 0 ? null : `${path}: text holds a NUL character (\\u0000 at character ${at}), which the database cannot store`;
  }
  if (typeof value === "number") {
    return Number.isInteger(value) && !Number.isSafeInteger(value) ? `${path}: integer out of the JSON-safe range` : null;
  }
  if (value === null || typeof value !== "object") return null;
  const items: [string, unknown][] = Array.isArray(value) ? value.map((item, i) => [String(i), item]) : Object.entries(value);
  for (const [key, item] of items) {
    const shownKey = key.replaceAll("\u0000", "\\u0000");
    const problem = (key.includes("\u0000") ? `${path}.${shownKey}: text holds a NUL character` : null) ?? unstorable(item, `${path}.${key}`);
    if (problem !== null) return problem;
  }
  return null;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "bigint") return `the bigint ${value}n`;
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? "an array" : `a${/^[aeiou]/.test(typeof value) ? "n" : ""} ${typeof value}`;
}

/** A project row as the frontend keeps it. */
export interface Project {
  id: string;
  userId?: string | null;
  title: string;
  script: string;
  status: string;
  aspectRatio: string;
  settings: Record<string, unknown>;
  createdAt?: string;
  updatedAt?: string;
  [field: string]: unknown;
}

/** A scene row as the frontend keeps it. */
export interface Scene {
  id: string;
  projectId?: string;
  sceneIndex: number;
  heading: string;
  body: string;
  duration: number;
  voiceId: string | null;
  [field: string]: unknown;
}

/** A clip row as the frontend keeps it. */
export interface Clip {
  id: string;
  projectId?: string;
  sceneId: string | null;
  provider: string;
  prompt: string;
  fileUrl: string | null;
  thumbnailUrl: string | null;
  status: string;
  duration: number;
  trimStart: number;
  trimEnd: number | null;
  orderIndex: number;
  metadata: Record<string, unknown>;
  [field: string]: unknown;
}

/** A project with its scenes and clips, in their order: the shape of the studio's Redux state. */
export interface StudioProject extends Project {
  scenes: Scene[];
  clips: Clip[];
}

/** The part of the studio's Redux state that holds projects: `{projects: [...]}` (an object by id works too). */
export interface ReduxState {
  projects: StudioProject[] | Record<string, StudioProject>;
}

/** A project of the Redux state, by id, with its keys in camelCase (snake_case keys accepted). */
export function findLocalProject(state: ReduxState | null | undefined, projectId: string): StudioProject | null {
  if (state == null || state.projects == null) return null;
  const projects = Array.isArray(state.projects) ? state.projects : Object.values(state.projects);
  const found = projects.find((project) => project != null && project.id === projectId);
  if (found === undefined) return null;
  const project = toCamel<StudioProject>(found);
  // Rows without an index take their position; then they are put in their order (stable for ties).
  const order = (rows: unknown, field: string): Record<string, unknown>[] =>
    (Array.isArray(rows) ? rows : [])
      .map((row: Record<string, unknown>, index) => {
        const camel = toCamel<Record<string, unknown>>(row);
        return { ...camel, [field]: typeof camel[field] === "number" ? camel[field] : index };
      })
      .sort((a, b) => (a[field] as number) - (b[field] as number));
  project.scenes = order(project.scenes, "sceneIndex") as Scene[];
  project.clips = order(project.clips, "orderIndex") as Clip[];
  return project;
}
