/**
 * `@omegaframe/syncd-client`: the editor side of syncd's protocol (docs/protocol.md) for browsers and
 * Node, and the studio's calls on top of it. The React hook lives in `@omegaframe/syncd-client/react`.
 */

export * from "./wire.js";
export * from "./frames.js";
export * from "./events.js";
export * from "./view.js";
export { Backoff } from "./backoff.js";
export * from "./pacing.js";
export * from "./protocol.js";
export * from "./errors.js";
export * from "./emitter.js";
export * from "./client.js";
export * from "./endpoints.js";
export * from "./http.js";
export * from "./rows.js";
export * from "./studio.js";
export { type TokenSource } from "./token.js";
export { askBeforeLeaving } from "./page.js";
export { withPending } from "./pending.js";
export { FILE_URL_SECONDS, FileUrls, signedObject } from "./files.js";
export { type KeyValueStorage } from "./storage.js";
export { browserLocks, type Locks, UNSENT_KEY } from "./recovery.js";
export * from "./store.js";
