/**
 * The editor protocol's constants, the same as `syncd/wire.py` (docs/protocol.md).
 *
 * Nothing here does I/O, so the sans-I/O core and the connection layer both import it.
 */

/** The protocol version an editor names in `hello`. */
export const PROTOCOL_VERSION = 1;

/** Where editors open their WebSocket. */
export const EDITOR_PATH = "/v1/editor";
/** Where the daemon serves its HTTP API (docs/http.md), below the path it is served under. */
export const API_PATH = "/v1";

/** The `code` of an `error` frame. */
export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "internal";

/** Every `ErrorCode`, for checks at run time. */
export const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "too_large",
  "rate_limited",
  "unavailable",
  "internal",
]);

/** What a `change` did to its row. */
export type ChangeOp = "insert" | "update" | "delete";

/** Every `ChangeOp`, for checks at run time. */
export const CHANGE_OPS: ReadonlySet<string> = new Set<ChangeOp>(["insert", "update", "delete"]);

/** Who made a change: an editor's mutation, or the database (anyone else, or its own defaults). */
export type Origin = "editor" | "db";

/** The tables that are live in syncd. */
export type Table = "projects" | "scenes" | "clips";

/** A table whose rows editors may insert, delete and reorder. */
export type ChildTable = "scenes" | "clips";

/** Every `Table`, for checks at run time. */
export const TABLES: ReadonlySet<string> = new Set<Table>(["projects", "scenes", "clips"]);

/** Read-only tables of the stream that editors follow but do not edit (protocol §4). */
export const SIDE_TABLES: readonly string[] = ["exports", "audio_files"];

/** The column that orders the rows of a child table. */
export const ORDER_FIELD: Readonly<Record<ChildTable, string>> = {
  scenes: "scene_index",
  clips: "order_index",
};

// Close codes: the 44xx ones mirror HTTP statuses; 1008, 1012 and 1013 are RFC 6455's.
export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;
/** Never sent: what a connection that dropped without a close frame reports. */
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_NOT_READING = 1008;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;
export const CLOSE_RESTART = 1012;
export const CLOSE_TRY_LATER = 1013;
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_NOT_FOUND = 4404;
export const CLOSE_HELLO_TIMEOUT = 4408;
export const CLOSE_TAKEN_OVER = 4409;
export const CLOSE_RATE_LIMITED = 4429;

/** The close codes the server uses on purpose, with their meaning. */
export const CLOSE_CODES: Readonly<Record<number, string>> = {
  [CLOSE_NOT_READING]: "not reading",
  [CLOSE_TOO_BIG]: "a frame far over the daemon's size limit",
  [CLOSE_RESTART]: "daemon restarting",
  [CLOSE_TRY_LATER]: "try again later",
  [CLOSE_UNAUTHORIZED]: "unauthorized",
  [CLOSE_FORBIDDEN]: "forbidden",
  [CLOSE_NOT_FOUND]: "project not found",
  [CLOSE_HELLO_TIMEOUT]: "hello timeout",
  [CLOSE_TAKEN_OVER]: "client id taken over",
  [CLOSE_RATE_LIMITED]: "rate limited",
};

/** Close codes after which a client does not reconnect by itself: reconnecting cannot help. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CLOSE_NORMAL,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  CLOSE_UNAUTHORIZED,
  CLOSE_FORBIDDEN,
  CLOSE_NOT_FOUND,
  CLOSE_TAKEN_OVER,
]);
