/**
 * Checks of the server frames a client relies on, and the JSON form of the frames it sends
 * (the same rules as `syncd/client/frames.py`).
 *
 * A client refuses a server frame that lacks a field it needs: `BadServerFrame` names the frame and
 * the field, and the client closes the connection with 1002.
 */

import { CHANGE_OPS } from "./wire.js";

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One protocol frame, parsed from (or to be written as) a JSON object. */
export type Frame = Record<string, unknown>;

/** One row of `projects`, `scenes` or `clips` as the server sends it, keyed by column name. */
export type Row = Record<string, unknown> & { id: string };

/** A server frame that breaks the protocol; the message says which frame and field. */
export class BadServerFrame extends Error {
  override name = "BadServerFrame";
}

/** True for a plain JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Read one WebSocket message as a frame.
 *
 * @throws BadServerFrame the message is not UTF-8 JSON holding an object.
 */
export function parse(message: string | ArrayBuffer | Uint8Array): Frame {
  let text: string;
  let value: unknown;
  try {
    text = typeof message === "string" ? message : new TextDecoder("utf-8", { fatal: true }).decode(message);
    value = JSON.parse(text);
  } catch (error) {
    throw new BadServerFrame(`a frame must be JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) {
    throw new BadServerFrame("a frame must be a JSON object");
  }
  return value;
}

/**
 * Check that `value` is something JSON carries as it is (no NaN, no undefined, no cycles, ...).
 *
 * @throws TypeError naming where in `value` the problem is.
 */
export function checkJson(value: unknown, where = "frame", seen: Set<object> = new Set()): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`${where}: ${value} cannot be written as JSON`);
      return;
    case "object":
      break;
    case "undefined":
      throw new TypeError(`${where}: undefined cannot be written as JSON`);
    default:
      throw new TypeError(`${where}: a ${typeof value} cannot be written as JSON`);
  }
  if (value === null) return;
  if (seen.has(value)) throw new TypeError(`${where}: a cycle cannot be written as JSON`);
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, index) => checkJson(item, `${where}[${index}]`, seen));
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`${where}: a ${proto?.constructor?.name ?? "object"} cannot be written as JSON`);
    }
    for (const [key, item] of Object.entries(value)) checkJson(item, `${where}.${key}`, seen);
  }
  seen.delete(value);
}

/**
 * Write a client frame as compact JSON.
 *
 * @throws TypeError the frame holds a value JSON cannot carry (NaN, undefined, a Map, a cycle, ...).
 */
export function encode(frame: Frame): string {
  checkJson(frame);
  return JSON.stringify(frame);
}

/** How many bytes `text` takes in UTF-8, without encoding it (frames may be megabytes). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one code point beyond the BMP
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/** A mutation frame in words, for messages: `patch of scenes <id>`, `reorder of clips`, `flush`. */
export function describeMutation(frame: Frame): string {
  const type = String(frame["type"]);
  const table = frame["table"];
  if (typeof table !== "string") return type;
  const row = frame["row"];
  const id = type === "insert" && isObject(row) ? row["id"] : frame["id"];
  if (type === "insert") return typeof id === "string" ? `insert into ${table} of ${id}` : `insert into ${table}`;
  return typeof id === "string" ? `${type} of ${table} ${id}` : `${type} of ${table}`;
}

/** `n` with thousands separators (5,000,123), the same in every locale. */
export function withCommas(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** The kinds of value `get` checks for. */
export type Kind = "int" | "str" | "dict" | "list";

type KindType = { int: number; str: string; dict: Record<string, unknown>; list: unknown[] };

const KIND_NAMES: Record<Kind, string> = { int: "int", str: "str", dict: "dict", list: "list" };

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return "NoneType";
  if (Array.isArray(value)) return "list";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "string") return "str";
  if (typeof value === "boolean") return "bool";
  return "dict";
}

function isKind(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case "int":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "str":
      return typeof value === "string";
    case "dict":
      return isObject(value);
    case "list":
      return Array.isArray(value);
  }
}

/** Return `frame[key]` if it is a `kind`, else throw `BadServerFrame`. */
export function get<K extends Kind>(frame: Frame, key: string, kind: K): KindType[K] {
  const value = frame[key];
  if (!isKind(value, kind)) {
    throw new BadServerFrame(`${String(frame["type"])}.${key}: expected ${KIND_NAMES[kind]}, got ${kindOf(value)}`);
  }
  return value as KindType[K];
}

/** Return `frame[key]` if it is an int or null (or missing), else throw `BadServerFrame`. */
export function getOptionalInt(frame: Frame, key: string): number | null {
  const value = frame[key];
  if (value === null || value === undefined) return null;
  return get(frame, key, "int");
}

/** Return `frame[key]` if it is a list of objects with a string `id`, else throw `BadServerFrame`. */
export function getRows(frame: Frame, key: string): Row[] {
  const rows = get(frame, key, "list");
  for (const row of rows) {
    if (!isObject(row) || typeof row["id"] !== "string") {
      throw new BadServerFrame(`${String(frame["type"])}.${key}: every row must be an object with a string id`);
    }
  }
  return rows as Row[];
}

/** Check a `change` frame's fields and return its seq; throw `BadServerFrame` if one is wrong. */
export function checkChange(frame: Frame): number {
  const seq = get(frame, "seq", "int");
  // Any table name is taken: tables may be added to the stream (protocol §4); the view keeps the
  // rows of the ones it does not sync aside.
  get(frame, "table", "str");
  const op = get(frame, "op", "str");
  if (!CHANGE_OPS.has(op)) throw new BadServerFrame(`change.op: unknown op ${JSON.stringify(op)}`);
  get(frame, "id", "str");
  if (op === "insert") get(frame, "row", "dict");
  else if (op === "update") get(frame, "set", "dict");
  return seq;
}

/** `value` as JSON with the keys of every object sorted, so that equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** The key that matches a `pong` to its `ping`: `t` as canonical JSON (key order ignored). */
export function pingKey(t: unknown): string {
  return canonicalJson(t);
}
