/**
 * The arguments of `EditorClient`'s mutations, shaped into what the protocol sends, or refused with
 * a `TypeError` that names the call (`patch of scenes <id>: ...`) before any mid is used.
 */

import { shown } from "./ids.js";

/** `set` (or an insert's `row`) without the keys whose value is undefined, as `JSON.stringify` leaves them out. */
export function definedFields(fields: unknown, what: string, name: string): Record<string, unknown> {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new TypeError(`${what}: ${name} must be an object of fields, got ${shown(fields)}`);
  }
  // Optional form fields are undefined all the time; a key left undefined means "not changed".
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** The fields a patch sets; an empty `set` (or one whose every value is undefined) is refused. */
export function patchFields(set: unknown, what: string): Record<string, unknown> {
  const fields = definedFields(set, what, "set");
  if (Object.keys(fields).length === 0) {
    const given = Object.keys(set as object);
    const why = given.length === 0 ? "set is empty" : `every field in set is undefined (${given.join(", ")})`;
    throw new TypeError(`${what}: nothing to change: ${why}`);
  }
  return fields;
}

/** The ids of a reorder as an array; a lone string is refused, though it is iterable (by character). */
export function idList(ids: unknown, what: string): unknown[] {
  if (typeof ids === "string") {
    throw new TypeError(`${what}: expected a list of ids, got the string ${shown(ids)}; for one id pass [id]`);
  }
  if (typeof (ids as { [Symbol.iterator]?: unknown } | null | undefined)?.[Symbol.iterator] !== "function") {
    throw new TypeError(`${what}: expected a list of ids, got ${shown(ids)}`);
  }
  return [...(ids as Iterable<unknown>)];
}
