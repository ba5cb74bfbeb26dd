/**
 * What `ClientProtocol.takeEvents` reports, in the order things happened.
 *
 * Each event has the language-neutral form the conformance cases in `clients/conformance` use,
 * `{type: kind, ...fields}` with the fields of `syncd/client/events.py`, so a TypeScript and a Python
 * client report the same session the same way.
 */

import type { Frame } from "./frames.js";

/** The view is in sync on this connection; mutations flow from now on. */
export interface Joined {
  type: "joined";
  project_id: string;
  epoch: string;
  /** The project's latest seq when the server said welcome. */
  seq: number;
  /** The server's id of this connection (for its logs). */
  session: string;
  /** True when the missed changes were replayed, false when a snapshot replaced the view. */
  resumed: boolean;
}

/** A `snapshot` replaced the whole view; it is now at `seq` of `epoch`. */
export interface ViewReplaced {
  type: "view_replaced";
  epoch: string;
  seq: number;
}

/** The `change` with this seq is applied to the view. */
export interface ChangeApplied {
  type: "change_applied";
  seq: number;
  table: string;
  op: string;
  id: string;
}

/** The server made mutation `mid` durable; its changes have this seq. */
export interface Acknowledged {
  type: "acknowledged";
  mid: number;
  seq: number;
}

/** The server refused mutation `mid` (an `error` frame naming it); it changed nothing. */
export interface Rejected {
  type: "rejected";
  mid: number;
  code: string;
  message: string;
}

/** An `error` frame that answers no waiting mutation (its mid is null or already answered). */
export interface ServerError {
  type: "server_error";
  mid: number | null;
  code: string;
  message: string;
}

/** Mutation `mid` went out on a lost connection and is not sent again (resending is off). */
export interface Unanswered {
  type: "unanswered";
  mid: number;
}

/** Every change up to `seq` is in the database (a `saved` frame). */
export interface SavedUpTo {
  type: "saved_up_to";
  seq: number;
  at: string | null;
}

/** Who has the project open (a `presence` frame). */
export interface PresenceChanged {
  type: "presence_changed";
  editors: Frame[];
  /** How many editors have it open; `editors` lists the first of them when there are many. */
  count: number;
}

/** An `event` frame: a transient notice from another service, such as render progress. */
export interface Noticed {
  type: "noticed";
  topic: string;
  data: unknown;
}

/** The `pong` for a `ping` with this `t` came back. */
export interface PongReceived {
  type: "pong_received";
  t: unknown;
}

/** The stream does not fit the view: close this connection (1000) and open a new one now. */
export interface Resyncing {
  type: "resyncing";
  reason: string;
  /** Whether the next `hello` resumes (after a gap) or asks for a snapshot. */
  resume: boolean;
}

/** The server broke the protocol: close the connection with 1002 and `reason`; do not reconnect. */
export interface Violation {
  type: "violation";
  reason: string;
}

/** The connection ended without the client asking. */
export interface Disconnected {
  type: "disconnected";
  /** The WebSocket close code (1006 when it dropped without a close frame). */
  code: number;
  reason: string;
  /** True when reconnecting by itself would not help (4401, 4403, 4404, ...). */
  final: boolean;
  /** When to connect again (seconds on the caller's clock), or null when `final`. */
  retry_at: number | null;
}

/** Every event the client protocol reports. */
export type ClientEvent =
  | Joined
  | ViewReplaced
  | ChangeApplied
  | Acknowledged
  | Rejected
  | ServerError
  | Unanswered
  | SavedUpTo
  | PresenceChanged
  | Noticed
  | PongReceived
  | Resyncing
  | Violation
  | Disconnected;
