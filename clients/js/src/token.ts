/**
 * Where the access token comes from: a fixed value, or a function asked before each `hello` and
 * each HTTP call.
 *
 * Supabase access tokens expire (an hour by default) and supabase-js refreshes them. A client given
 * the token once would send an expired one at its next reconnect, be closed with 4401 (final), and
 * leave the user with unsent edits; given `() => session's access token`, it always sends the current one.
 */

/** A token, null for anonymous, or a function giving one (it may return a promise). */
export type TokenSource = string | null | (() => string | null | Promise<string | null>);

/** @throws TypeError `source` is not a string, null, undefined or a function. */
export function checkTokenSource(source: unknown, where: string): void {
  if (source !== undefined && source !== null && typeof source !== "string" && typeof source !== "function") {
    throw new TypeError(`${where}: the token must be a string, null or a function that gives one, got ${typeof source}`);
  }
}

/**
 * The token to send now.
 *
 * @throws TypeError the function gave something other than a string or null (named by `where`);
 *   whatever the function throws is passed on.
 */
export async function currentToken(source: TokenSource | undefined, where: string): Promise<string | null> {
  if (typeof source !== "function") return source ?? null;
  const token: unknown = await source();
  if (token !== null && token !== undefined && typeof token !== "string") {
    throw new TypeError(`${where}: the token function gave ${typeof token}, not a string or null`);
  }
  return token ?? null;
}

/**
 * The user a token names (its `sub`), read without checking the signature: only to tell one user's
 * kept edits from another's in the same browser. Null for no token or one that is not a JWT.
 */
export function tokenUser(token: string | null): string | null {
  const payload = token?.split(".")[1];
  if (payload === undefined) return null;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "="));
    const sub: unknown = JSON.parse(json)?.sub;
    return typeof sub === "string" ? sub.toLowerCase() : null;
  } catch {
    return null;
  }
}
