/**
 * `HttpApi`: the calls that need syncd's HTTP API rather than the editor WebSocket (creating and
 * listing projects, voices, exports). The paths are in `endpoints.ts`; they follow docs/http.md.
 */

import { exportsPath, projectPath, PROJECTS_PATH, signPath, voicePath, VOICES_PATH } from "./endpoints.js";
import { HttpError, HttpNetworkError } from "./errors.js";
import { checkJson, isObject } from "./frames.js";
import { servedUnder } from "./ids.js";
import { currentToken, type TokenSource } from "./token.js";
import { EDITOR_PATH } from "./wire.js";

/** The `fetch` the API uses: the browser's, Node's, or a test's. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** The settings of an `HttpApi`. */
export interface HttpApiOptions {
  /** The daemon's address, `http://host:port` or with the path a proxy serves it under (see `httpBase`). */
  baseUrl: string;
  /** The access token sent as `Authorization: Bearer …` (null or absent: anonymous), or a function asked for it before each call. */
  token?: TokenSource;
  /** The `fetch` to use (default `globalThis.fetch`). */
  fetch?: FetchLike;
}

/**
 * The HTTP base URL for `url`: `ws(s)` becomes `http(s)`, and the path keeps only the part the daemon
 * is served under (`https://studio.example.com/syncd/v1/editor` → `https://studio.example.com/syncd`).
 * An editor URL with a path of its own, not ending in `/v1/editor`, names no place for the API: the
 * host's root.
 */
export function httpBase(url: string): string {
  const parsed = new URL(url);
  const socket = parsed.protocol === "ws:" || parsed.protocol === "wss:";
  if (parsed.protocol === "ws:") parsed.protocol = "http:";
  else if (parsed.protocol === "wss:") parsed.protocol = "https:";
  const path = parsed.pathname.replace(/\/+$/, "");
  const under = socket && !path.endsWith(EDITOR_PATH) ? "" : servedUnder(path);
  return `${parsed.origin}${under}`;
}

/**
 * syncd's HTTP API, one method per call; every error status rejects with `HttpError`, and a request
 * that gets no answer at all (the daemon is down, the network failed) with `HttpNetworkError`.
 */
export class HttpApi {
  readonly baseUrl: string;
  private readonly token: TokenSource;
  private readonly fetchImpl: FetchLike;

  constructor(options: HttpApiOptions) {
    this.baseUrl = httpBase(options.baseUrl);
    this.token = options.token ?? null;
    const fetchImpl = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (fetchImpl === undefined) throw new TypeError("HttpApi: no fetch here; pass one as options.fetch");
    this.fetchImpl = fetchImpl;
  }

  /** Send one request with a JSON body (if any); resolve with the JSON answer (null for 204). */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const token = await currentToken(this.token, "HttpApi: options.token");
    if (token) headers["Authorization"] = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    const where = `${method} ${path}`;
    if (body !== undefined) {
      // JSON.stringify writes NaN as null and a Map as {}: the daemon would store what nobody sent.
      const sent = isObject(body) ? Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)) : body;
      checkJson(sent, `${where}: body`);
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(sent);
    }
    const url = `${this.baseUrl}${path}`;
    let response: Response;
    let text: string;
    try {
      // Called on its own: a browser's fetch run as a method of another object throws "Illegal invocation".
      const send = this.fetchImpl;
      response = await send(url, init);
      text = await response.text();
    } catch (error) {
      // fetch's own TypeError ("fetch failed") names neither the request nor why it failed.
      throw new HttpNetworkError(`${method} ${url}`, error);
    }
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (response.ok) throw new HttpError(response.status, null, "the answer is not JSON", where);
      }
    }
    if (!response.ok) {
      // docs/http.md: a refusal is {"error": code, "message": "…"}.
      const code = isObject(parsed) && typeof parsed["error"] === "string" ? parsed["error"] : null;
      const message = isObject(parsed) && typeof parsed["message"] === "string" ? parsed["message"] : text || response.statusText;
      throw new HttpError(response.status, code, message, where);
    }
    return parsed as T;
  }

  /** The projects the caller may open. */
  listProjects(): Promise<Record<string, unknown>[]> {
    return this.request("GET", PROJECTS_PATH).then((body) => listOf(body, "projects"));
  }

  /** Create a project (`id` optional: a client-chosen UUID); resolves with its row. */
  createProject(fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.request("POST", PROJECTS_PATH, fields).then((body) => rowOf(body, "project"));
  }

  /** One project's row, or null when it does not exist (404). */
  async getProject(projectId: string): Promise<Record<string, unknown> | null> {
    try {
      return rowOf(await this.request("GET", projectPath(projectId)), "project");
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return null;
      throw error;
    }
  }

  /** Delete a project with everything in it. */
  async deleteProject(projectId: string): Promise<void> {
    await this.request("DELETE", projectPath(projectId));
  }

  /** The caller's voices. */
  listVoices(): Promise<Record<string, unknown>[]> {
    return this.request("GET", VOICES_PATH).then((body) => listOf(body, "voices"));
  }

  /** Create a voice; resolves with its row. */
  createVoice(fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.request("POST", VOICES_PATH, fields).then((body) => rowOf(body, "voice"));
  }

  /** Change a voice's fields; resolves with its row. */
  updateVoice(voiceId: string, fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.request("PATCH", voicePath(voiceId), fields).then((body) => rowOf(body, "voice"));
  }

  /** Delete a voice. */
  async deleteVoice(voiceId: string): Promise<void> {
    await this.request("DELETE", voicePath(voiceId));
  }

  /** A project's exports. */
  listExports(projectId: string): Promise<Record<string, unknown>[]> {
    return this.request("GET", exportsPath(projectId)).then((body) => listOf(body, "exports"));
  }

  /** A signed URL of a stored file of one of the caller's projects, valid `expiresIn` seconds. */
  signUrl(bucket: string, path: string, expiresIn: number): Promise<string> {
    return this.request("POST", signPath(bucket, path), { expires_in: expiresIn }).then((body) => {
      if (isObject(body) && typeof body["signed_url"] === "string") return body["signed_url"];
      throw new HttpError(200, null, "expected a signed_url", `POST ${signPath(bucket, path)}`);
    });
  }

  /** Request an export of a project; resolves with the export's row. */
  requestExport(projectId: string, fields: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.request("POST", exportsPath(projectId), fields).then((body) => rowOf(body, "export"));
  }
}

/** A list answer: the array itself, or the array under `key` (`{"projects": [...]}`). */
function listOf(body: unknown, key: string): Record<string, unknown>[] {
  if (Array.isArray(body)) return body as Record<string, unknown>[];
  if (isObject(body) && Array.isArray(body[key])) return body[key] as Record<string, unknown>[];
  throw new HttpError(200, null, `expected a list of ${key}`, key);
}

/** A row answer: the object itself, or the object under `key` (`{"project": {...}}`). */
function rowOf(body: unknown, key: string): Record<string, unknown> {
  if (isObject(body) && isObject(body[key])) return body[key] as Record<string, unknown>;
  if (isObject(body)) return body;
  throw new HttpError(200, null, `expected a ${key}`, key);
}
