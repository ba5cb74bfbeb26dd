/**
 * The paths of syncd's HTTP API that the client calls, all in this one file.
 *
 * They follow docs/http.md of the syncd repository (the daemon serves them on the editor port, next
 * to `/v1/editor`). Requests and answers are JSON; an error answer carries the protocol's error code.
 */

/** `GET`: the caller's projects; `POST`: create a project (optionally with a client-chosen `id`). */
export const PROJECTS_PATH = "/v1/projects";

/** `GET`: one project's row; `DELETE`: delete it. */
export function projectPath(projectId: string): string {
  return `${PROJECTS_PATH}/${encodeURIComponent(projectId)}`;
}

/** `GET`: the caller's voices; `POST`: create one. */
export const VOICES_PATH = "/v1/voices";

/** `PATCH`: change a voice; `DELETE`: delete it. */
export function voicePath(voiceId: string): string {
  return `${VOICES_PATH}/${encodeURIComponent(voiceId)}`;
}

/** `GET`: a project's exports; `POST`: request an export of the project. */
export function exportsPath(projectId: string): string {
  return `${projectPath(projectId)}/exports`;
}

/** `POST {expires_in}`: a new signed URL of a stored file (`bucket`, `path` as `projects/{id}/…`). */
export function signPath(bucket: string, path: string): string {
  return `/v1/storage/sign/${encodeURIComponent(bucket)}/${path.split("/").map(encodeURIComponent).join("/")}`;
}
