/**
 * The UUIDs an editor names (projects, its client id, rows) and the editor URL, checked where the
 * client takes them, so that a wrong option fails at once with a message rather than as a
 * connection that never comes up.
 */

import { API_PATH, EDITOR_PATH } from "./wire.js";

/** A UUID in its text form, in either case (the daemon's `syncd/rows.py` takes the same). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A short, printable form of a wrong value for an error message. */
export function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  return `${typeof value} ${String(value)}`;
}

/**
 * `value` as the daemon keeps it: UUIDs in lower case (it lower-cases what it is sent, and answers
 * with that, so a client comparing its own spelling would see a mismatch).
 *
 * @throws TypeError `value` is not a UUID string; `where` names the option.
 */
export function uuidOption(value: unknown, where: string): string {
  if (typeof value !== "string" || !UUID_PATTERN.test(value)) {
    const missing = value === undefined ? "is missing" : `is not a UUID: ${shown(value)}`;
    throw new TypeError(`${where} ${missing}; it must be a UUID such as 0f000000-0000-4000-8000-000000000001`);
  }
  return value.toLowerCase();
}

/** A row id as the daemon keeps it: lower case (row ids are UUIDs; anything else is the daemon's to refuse). */
export function rowId(value: string): string {
  return typeof value === "string" ? value.toLowerCase() : value;
}

/**
 * The path the daemon is served under (`""` at the root, `/syncd` behind a proxy that serves it there),
 * from the path of its address, of its HTTP API (`…/v1`, as `syncd run` prints it) or of its editor URL.
 */
export function servedUnder(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  for (const tail of [EDITOR_PATH, API_PATH]) {
    if (trimmed.endsWith(tail)) return trimmed.slice(0, -tail.length);
  }
  return trimmed;
}

/**
 * The editor URL for `url`. A `ws(s)` URL is one already (given `/v1/editor` when it has no path); the
 * daemon's address (`http(s)`, with the path a proxy serves it under, if any) gets `/v1/editor` after
 * that path.
 */
export function editorUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol === "ws:" || parsed.protocol === "wss:") {
    if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = EDITOR_PATH;
    return parsed.toString();
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  parsed.pathname = `${servedUnder(parsed.pathname)}${EDITOR_PATH}`;
  return parsed.toString();
}

/**
 * The editor URL for the `url` option.
 *
 * @throws TypeError `value` is missing, not a URL, or not an http(s) or ws(s) one.
 */
export function editorUrlOption(value: unknown, where: string): string {
  const expected = "the daemon's address (http://host:port) or its editor URL (ws://host:port/v1/editor)";
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${where} ${value === undefined ? "is missing" : `is not a URL: ${shown(value)}`}; pass ${expected}`);
  }
  let url: string;
  try {
    url = editorUrl(value);
  } catch {
    throw new TypeError(`${where} is not a URL: ${shown(value)}; pass ${expected}`);
  }
  const scheme = new URL(url).protocol;
  if (scheme !== "ws:" && scheme !== "wss:") {
    throw new TypeError(`${where} has the scheme ${scheme} in ${shown(value)}; pass ${expected}`);
  }
  return url;
}
