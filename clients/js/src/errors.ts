/** The errors the client's calls reject with. */

import { CLOSE_ABNORMAL, CLOSE_CODES } from "./wire.js";

/** The server answered a request with an `error` frame. */
export class EditorError extends Error {
  override name = "EditorError";

  /**
   * @param code one of the protocol's error codes (`bad_request`, `conflict`, ...).
   * @param detail the server's explanation.
   * @param mid the mutation the error is about, or null for errors about the connection.
   */
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly mid: number | null,
  ) {
    super(mid === null ? `${code}: ${detail}` : `${code} (mid ${mid}): ${detail}`);
  }
}

/**
 * The connection is closed for good, so the awaited answer will not come on it.
 *
 * For a mutation this does not mean it failed: unless `kept` is false, it stays unacknowledged in
 * the client and is sent again on the next `connect()` (protocol §16), so it may yet be applied.
 */
export class ClientClosed extends Error {
  override name = "ClientClosed";

  /**
   * @param code the WebSocket close code (4401 unauthorized, 4404 not found, 1002 protocol error, ...;
   *   1006 when the connection dropped without a close frame).
   * @param reason the close reason, possibly empty.
   * @param kept true when the call was a mutation the client keeps and sends again on the next
   *   `connect()`; false for anything else (pings, waits, mutations that were dropped).
   */
  constructor(
    readonly code: number = CLOSE_ABNORMAL,
    readonly reason: string = "",
    readonly kept: boolean = false,
  ) {
    const meaning = CLOSE_CODES[code];
    let text = `connection closed with code ${code}`;
    if (meaning) text += ` (${meaning})`;
    if (reason) text += `: ${reason}`;
    if (kept) text += "; the mutation is kept and sent again on the next connect()";
    super(text);
  }
}

/** A call that did not get its answer within the time it was given. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** A request to syncd's HTTP API that was answered with an error status. */
export class HttpError extends Error {
  override name = "HttpError";

  /**
   * @param status the HTTP status (0 when no answer came: `HttpNetworkError`).
   * @param code the protocol's error code from the JSON body, when it has one.
   * @param detail the body's message, or its text.
   * @param where the method and path of the request.
   */
  constructor(
    readonly status: number,
    readonly code: string | null,
    readonly detail: string,
    readonly where: string,
  ) {
    super(`${where}: ${status}${code ? ` ${code}` : ""}: ${detail}`);
  }
}

/**
 * A request to syncd's HTTP API that got no answer (the daemon is not reachable, the network
 * failed): an `HttpError` with status 0, so one `catch` covers both.
 */
export class HttpNetworkError extends HttpError {
  override name = "HttpNetworkError";

  /**
   * @param request the method and full URL of the request.
   * @param cause what `fetch` threw.
   */
  constructor(request: string, cause: unknown) {
    const detail = describeCause(cause);
    super(0, null, detail, request);
    this.message = `${request}: no answer from syncd: ${detail}`;
    this.cause = cause;
  }
}

/** Why `fetch` failed, in words: Node hides the reason (ECONNREFUSED, ...) in the error's `cause`. */
function describeCause(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth += 1) {
    const text = current instanceof Error ? current.message : String(current);
    if (text && !parts.includes(text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.length > 0 ? parts.join(": ") : "no answer";
}
