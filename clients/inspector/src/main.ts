/**
 * The inspector page: `/` lists the daemon's projects, `/projects/{id}` shows one project live.
 *
 * The listing polls `GET /v1/inspector/projects` (the daemon's view: open or not, editors, seq, saved
 * seq, unsaved edits and their age). A project page is an ordinary editor of the project: an
 * `EditorClient` of `@omegaframe/syncd-client` keeps the view live, reconnects by itself and resends
 * what the daemon did not acknowledge; a heading or a prompt typed here is a `patch`, and "Save now"
 * is a `flush`. No framework: the DOM is built once per row and updated in place, so typing is never
 * interrupted by what other editors do.
 */

import { EditorClient, randomUuid, withPending, type Frame, type Row, type ViewData } from "../../js/src/index.js";


/**
 * Where the daemon serves the inspector: `/`, or the path a proxy serves the daemon under
 * (`https://studio.example.com/syncd/`). This script is `static/inspector.js` below it.
 */
const ROOT = new URL("../", import.meta.url);

const POLL_MS = 1000;
const STREAM_LENGTH = 60;
const TOKEN_KEY = "syncd.inspector.token";

interface ListedProject {
  id: string;
  title: string | null;
  user_id: string | null;
  updated_at: string | null;
  open: boolean;
  editors: { client_id: string; user_id: string | null }[];
  seq: number | null;
  saved_seq: number | null;
  unsaved: number;
  unsaved_age: number;
}

// ---- small DOM helpers --------------------------------------------------------------------------

type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name === "class") el.className = String(value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

function text(el: Element | null, value: string): void {
  if (el !== null && el.textContent !== value) el.textContent = value;
}

function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : "—";
}

/** A stable colour per client id, so one editor looks the same everywhere on the page. */
function hue(id: string): number {
  let n = 0;
  for (const ch of id) n = (n * 31 + ch.charCodeAt(0)) % 360;
  return n;
}

function dot(id: string): HTMLElement {
  const el = h("span", { class: "dot", title: id });
  el.style.setProperty("--hue", String(hue(id)));
  return el;
}

function age(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  return `${Math.round(seconds / 60)} min`;
}

/** A title to show: an empty or blank one reads as "(untitled)", like a missing one. */
function titleOf(value: unknown): string {
  const title = typeof value === "string" ? value.trim() : "";
  return title || "(untitled)";
}

function clock(date: Date): string {
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY) || null;
}

async function listProjects(): Promise<ListedProject[]> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  const response = await fetch(new URL("v1/inspector/projects", ROOT), { headers, cache: "no-store" });
  const body = (await response.json()) as { projects?: ListedProject[]; message?: string };
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
  return body.projects ?? [];
}

function crumbs(...parts: Child[]): void {
  const nav = document.getElementById("crumbs")!;
  nav.replaceChildren(...parts.filter((p): p is Node | string => Boolean(p)));
}

// ---- the listing ---------------------------------------------------------------------------------

function listingPage(app: HTMLElement): void {
  crumbs(h("span", {}, "Projects"));
  document.title = "Projects · syncd inspector";
  const status = h("p", { class: "muted", id: "list-status" }, "Loading…");
  const body = h("div", { class: "cards", id: "projects" });
  app.replaceChildren(
    h("section", { class: "head" }, h("h1", {}, "Projects"), status),
    body,
  );
  let listedAt: Date | null = null;
  const refresh = async (): Promise<void> => {
    try {
      const projects = await listProjects();
      listedAt = new Date();
      const open = projects.filter((p) => p.open).length;
      const editors = projects.reduce((n, p) => n + p.editors.length, 0);
      const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;
      text(status, `${plural(projects.length, "project")} · ${open} open · ${plural(editors, "editor")} connected`);
      status.className = "muted";
      body.classList.remove("stale");
      body.replaceChildren(...projects.map(projectCard));
      if (projects.length === 0) body.append(h("p", { class: "empty" }, "No projects yet. Create one with syncd project create TITLE, or import some with syncd import FILE."));
    } catch (error) {
      // The cards stay, dimmed, with the time they were true: an editor count or "all saved" from
      // before the daemon went away must not read as the present.
      const shown = listedAt === null ? "" : ` · showing the listing as of ${listedAt.toLocaleTimeString([], { hour12: false })}`;
      text(status, `Cannot list projects: ${(error as Error).message}${shown}`);
      status.className = "warn";
      body.classList.add("stale");
    }
  };
  void refresh();
  setInterval(() => void refresh(), POLL_MS);
}

function projectCard(p: ListedProject): HTMLElement {
  const unsaved = p.unsaved > 0
    ? h("span", { class: "pill warn" }, `${p.unsaved} unsaved · ${age(p.unsaved_age)}`)
    : p.open ? h("span", { class: "pill ok" }, "all saved") : null;
  return h(
    "a",
    { class: `card${p.open ? " open" : ""}`, href: `${ROOT.pathname}projects/${p.id}`, "data-project": p.id },
    h("div", { class: "card-top" },
      h("strong", { class: "title", title: titleOf(p.title) }, titleOf(p.title)),
      h("span", { class: `pill ${p.open ? "live" : ""}` }, p.open ? "open" : "closed"),
    ),
    h("div", { class: "meta" },
      h("code", { title: p.id }, shortId(p.id)),
      h("span", {}, p.user_id ? `owner ${shortId(p.user_id)}` : "anonymous"),
      p.open ? h("span", {}, `seq ${p.seq} · saved ${p.saved_seq}`) : null,
    ),
    h("div", { class: "card-bottom" },
      h("span", { class: "editors" }, ...p.editors.map((e) => dot(e.client_id)),
        p.editors.length ? ` ${p.editors.length} editing` : "no editors"),
      unsaved,
    ),
  );
}

// ---- one project ---------------------------------------------------------------------------------

class ProjectPage {
  private readonly client: EditorClient;
  private readonly rows = new Map<string, Row>();
  private readonly sceneEls = new Map<string, HTMLElement>();
  private readonly clipEls = new Map<string, HTMLElement>();
  private readonly stream: HTMLOListElement;
  private readonly scenesEl: HTMLElement;
  private readonly looseEl: HTMLElement;
  private daemonInfo: ListedProject | null = null;
  /** The page's seq when the last poll was sent, and `performance.now()` when its answer came. */
  private polledSeq = 0;
  private polledAt = 0;
  private changes = 0;

  constructor(private readonly app: HTMLElement, private readonly projectId: string) {
    this.client = new EditorClient({ url: ROOT.href, projectId, token: token(), clientId: randomUuid(), warnBeforeUnload: true });
    this.stream = h("ol", { class: "stream", id: "stream" });
    this.scenesEl = h("div", { class: "scenes", id: "scenes" });
    this.looseEl = h("div", { class: "clips loose", id: "loose-clips" });
    app.replaceChildren(this.layout());
    this.client.on("status", () => this.renderStatus());
    this.client.on("snapshot", () => this.resetRows());
    this.client.on("view", () => this.renderView());
    this.client.on("change", (change) => this.noteChange(change.seq, change.table, change.op, change.id));
    this.client.on("saved", () => this.renderStatus());
    // What the daemon says about the project rather than one edit: a save the database refused, edits
    // that wait for room on the daemon's disk. Shown until a save with none of this page's edits waiting.
    this.client.on("error", (error) => {
      if (error.mid === null) this.notice(error.detail);
    });
    this.client.on("saved", () => {
      if (this.client.unacked.length === 0) this.notice(null);
    });
    this.client.on("presence", () => this.renderPresence());
    this.client.on("disconnected", (d) => {
      if (d.final) this.fail(`Disconnected for good (${d.code}${d.reason ? `: ${d.reason}` : ""}).`);
    });
    this.client.connect().catch((error: Error) => this.fail(error.message));
    setInterval(() => void this.poll(), POLL_MS);
    setInterval(() => this.renderStatus(), 250);
    void this.poll();
  }

  private layout(): HTMLElement {
    const save = h("button", { id: "save-now", class: "primary", type: "button" }, "Save now");
    save.addEventListener("click", () => {
      save.disabled = true;
      this.client.flush().then(() => this.client.waitSaved()).catch(() => undefined)
        .finally(() => { save.disabled = false; this.renderStatus(); });
    });
    const stat = (id: string, label: string): HTMLElement =>
      h("div", { class: "stat" }, h("span", { class: "label" }, label), h("span", { class: "value", id }, "—"));
    return h("div", { class: "project" },
      h("section", { class: "head" },
        h("div", {},
          h("h1", { id: "project-title" }, "…"),
          h("p", { class: "muted" }, h("code", {}, this.projectId), " ", h("span", { id: "project-meta" })),
        ),
        save,
      ),
      h("section", { class: "stats", "aria-label": "sync state" },
        stat("status", "connection"), stat("seq", "seq"), stat("saved-seq", "saved seq"),
        stat("unsaved-age", "unsaved edits"), stat("mine", "waiting for ack"),
      ),
      h("p", { class: "warn", id: "problem", hidden: true }),
      h("p", { class: "warn", id: "notice", hidden: true }),
      h("div", { class: "columns" },
        h("section", { class: "main" },
          h("h2", {}, "Scenes ", h("span", { class: "count", id: "scene-count" })),
          h("p", { class: "empty", id: "no-scenes", hidden: true }, "No scenes yet."),
          this.scenesEl,
          h("h2", { id: "loose-title", hidden: true }, "Clips without a scene"),
          this.looseEl,
          h("h2", { id: "exports-title", hidden: true }, "Exports"),
          h("ul", { class: "exports", id: "exports", hidden: true }),
        ),
        h("aside", { class: "side" },
          h("h2", {}, "Editors ", h("span", { class: "count", id: "editor-count" })),
          h("ul", { class: "presence", id: "presence" }),
          h("h2", {}, "Changes ", h("span", { class: "count", id: "change-count" })),
          this.stream,
        ),
      ),
    );
  }

  private fail(message: string): void {
    const el = document.getElementById("problem")!;
    el.hidden = false;
    text(el, message);
    this.renderStatus();
  }

  private notice(message: string | null): void {
    const el = document.getElementById("notice")!;
    el.hidden = message === null;
    text(el, message === null ? "" : message.charAt(0).toUpperCase() + message.slice(1));
  }

  private async poll(): Promise<void> {
    const seq = this.client.seq;
    try {
      const projects = await listProjects();
      this.daemonInfo = projects.find((p) => p.id === this.projectId) ?? null;
    } catch {
      this.daemonInfo = null;
    }
    this.polledSeq = seq;
    this.polledAt = performance.now();
    this.renderStatus();
  }

  /**
   * The unsaved edits: the count and age come from the daemon's listing (polled), but the live seq
   * and saved seq decide first, so the three never disagree: everything up to the saved seq is in the
   * database, so when it has reached the seq nothing is unsaved, whatever the last poll said; and a
   * poll that said "none" before changes the page has seen since cannot vouch for them.
   */
  private unsavedText(): string {
    const info = this.daemonInfo;
    if (info === null && this.client.status !== "live") return "—";
    if (this.client.savedSeq >= this.client.seq) return "none";
    if (info !== null && info.unsaved > 0) {
      const since = (performance.now() - this.polledAt) / 1000; // the age goes on between polls
      return `${info.unsaved} · oldest ${age(info.unsaved_age + since)}`;
    }
    return this.client.seq > this.polledSeq ? "…" : "none";
  }

  private renderStatus(): void {
    const status = this.client.status;
    const el = document.getElementById("status");
    if (el !== null) {
      text(el, status);
      el.className = `value status-${status}`;
    }
    text(document.getElementById("seq"), String(this.client.seq));
    text(document.getElementById("saved-seq"), String(this.client.savedSeq));
    text(document.getElementById("unsaved-age"), this.unsavedText());
    text(document.getElementById("mine"), String(this.client.unacked.length));
  }

  private renderPresence(): void {
    const list = document.getElementById("presence")!;
    const editors = this.client.editors as Frame[];
    text(document.getElementById("editor-count"), String(editors.length));
    list.replaceChildren(...editors.map((e) => {
      const id = String(e["client_id"]);
      const me = id === this.client.clientId;
      return h("li", { "data-client": id }, dot(id), h("code", {}, shortId(id)),
        h("span", { class: "muted" }, e["user_id"] ? ` user ${shortId(String(e["user_id"]))}` : " anonymous"),
        me ? h("span", { class: "pill" }, "this page") : null);
    }));
  }

  /**
   * The view with this page's edits that the daemon has not acknowledged on top: what the person
   * typed. A field shows it, never the daemon's older value; a key typed into a field that showed
   * the older value would send the field without the keys before it.
   */
  private shown(): ViewData {
    return withPending(this.client.view, this.client.pending);
  }

  private renderView(): void {
    const { project, scenes, clips } = this.shown();
    const title = project ? titleOf(project["title"]) : "(no such project)";
    text(document.getElementById("project-title"), title);
    document.title = `${title} · syncd inspector`;
    crumbs(h("a", { href: ROOT.pathname }, "Projects"), h("span", { class: "sep" }, "/"), h("span", {}, title));
    if (project) {
      const bits = [project["status"], project["aspect_ratio"], project["user_id"] ? `owner ${shortId(String(project["user_id"]))}` : "anonymous"];
      text(document.getElementById("project-meta"), bits.filter(Boolean).join(" · "));
    }
    text(document.getElementById("scene-count"), String(scenes.length));
    document.getElementById("no-scenes")!.hidden = project === null || scenes.length > 0;
    this.sync(this.sceneEls, scenes, this.scenesEl, (row) => this.sceneEl(row), (el, row) => this.updateScene(el, row));
    const byScene = new Map<string, Row[]>();
    const loose: Row[] = [];
    const sceneIds = new Set(scenes.map((scene) => scene.id));
    for (const clip of clips) {
      const sceneId = clip["scene_id"];
      if (typeof sceneId === "string" && sceneIds.has(sceneId)) {
        byScene.set(sceneId, [...(byScene.get(sceneId) ?? []), clip]);
      } else loose.push(clip);
    }
    const seen = new Set<string>();
    for (const scene of scenes) {
      const holder = this.sceneEls.get(scene.id)!.querySelector<HTMLElement>(".clips")!;
      this.placeClips(byScene.get(scene.id) ?? [], holder, seen);
    }
    this.placeClips(loose, this.looseEl, seen);
    for (const [id, el] of this.clipEls) if (!seen.has(id)) { el.remove(); this.clipEls.delete(id); }
    document.getElementById("loose-title")!.hidden = loose.length === 0;
    this.renderExports();
    this.renderStatus();
  }

  /** Keep `container`'s children one element per row, in order, reusing the elements of known rows. */
  private sync(
    els: Map<string, HTMLElement>, rows: Row[], container: HTMLElement,
    make: (row: Row) => HTMLElement, update: (el: HTMLElement, row: Row) => void,
  ): void {
    const ids = new Set(rows.map((r) => r.id));
    for (const [id, el] of els) if (!ids.has(id)) { el.remove(); els.delete(id); }
    rows.forEach((row, index) => {
      let el = els.get(row.id);
      if (el === undefined) { el = make(row); els.set(row.id, el); }
      update(el, row);
      if (container.children[index] !== el) container.insertBefore(el, container.children[index] ?? null);
    });
  }

  private placeClips(clips: Row[], holder: HTMLElement, seen: Set<string>): void {
    clips.forEach((clip, index) => {
      seen.add(clip.id);
      let el = this.clipEls.get(clip.id);
      if (el === undefined) { el = this.clipEl(clip); this.clipEls.set(clip.id, el); }
      this.updateClip(el, clip);
      if (holder.children[index] !== el) holder.insertBefore(el, holder.children[index] ?? null);
    });
  }

  private field(table: "scenes" | "clips", id: string, name: string, multiline: boolean): HTMLInputElement | HTMLTextAreaElement {
    const input = multiline ? h("textarea", { rows: "2", name, spellcheck: "false" }) : h("input", { name, type: "text", spellcheck: "false" });
    input.addEventListener("input", () => {
      this.client.patch(table, id, { [name]: input.value }).catch((error: Error) => this.fail(error.message));
      this.renderStatus();
    });
    input.addEventListener("blur", () => {
      const row = this.shown()[table].find((r) => r.id === id);
      if (row !== undefined && input.value !== String(row[name] ?? "")) input.value = String(row[name] ?? "");
    });
    return input;
  }

  private sceneEl(row: Row): HTMLElement {
    const heading = this.field("scenes", row.id, "heading", false);
    heading.setAttribute("aria-label", "scene heading");
    return h("article", { class: "scene", "data-scene": row.id },
      h("div", { class: "scene-head" }, h("span", { class: "index" }), heading, h("span", { class: "duration muted" })),
      h("p", { class: "body" }),
      h("div", { class: "clips" }),
    );
  }

  private updateScene(el: HTMLElement, row: Row): void {
    text(el.querySelector(".index"), String(Number(row["scene_index"] ?? 0) + 1));
    setValue(el.querySelector<HTMLInputElement>("input[name=heading]")!, row["heading"]);
    text(el.querySelector(".body"), String(row["body"] ?? ""));
    text(el.querySelector(".duration"), typeof row["duration"] === "number" ? `${row["duration"]} s` : "");
  }

  private clipEl(row: Row): HTMLElement {
    const prompt = this.field("clips", row.id, "prompt", true);
    prompt.setAttribute("aria-label", "clip prompt");
    return h("div", { class: "clip", "data-clip": row.id },
      h("div", { class: "clip-meta" }, h("span", { class: "order" }), h("span", { class: "pill clip-status" }), h("span", { class: "muted details" })),
      prompt,
    );
  }

  private updateClip(el: HTMLElement, row: Row): void {
    text(el.querySelector(".order"), `#${Number(row["order_index"] ?? 0) + 1}`);
    const status = String(row["status"] ?? "");
    const pill = el.querySelector(".clip-status")!;
    text(pill, status);
    pill.className = `pill clip-status s-${status}`;
    const bits = [row["provider"], typeof row["duration"] === "number" ? `${row["duration"]} s` : null];
    text(el.querySelector(".details"), bits.filter(Boolean).join(" · "));
    setValue(el.querySelector<HTMLTextAreaElement>("textarea[name=prompt]")!, row["prompt"]);
  }

  /** The rows as the stream last saw them, to tell which fields a change touched. */
  private resetRows(): void {
    const view = this.client.view;
    this.rows.clear();
    for (const row of [...view.rows("projects").values(), ...view.scenes.values(), ...view.clips.values()]) {
      this.rows.set(row.id, row);
    }
  }

  private noteChange(seq: number, table: string, op: string, id: string): void {
    const view = this.client.view;
    const synced = table === "projects" || table === "scenes" || table === "clips";
    const row = (synced ? view.rows(table) : view.sides.get(table))?.get(id);
    const before = this.rows.get(id);
    if (row === undefined) this.rows.delete(id);
    else this.rows.set(id, row);
    const fields = op === "update" && row !== undefined && before !== undefined
      ? Object.keys(row).filter((k) => row[k] !== before[k] && JSON.stringify(row[k]) !== JSON.stringify(before[k]))
      : [];
    const edited = fields.filter((k) => k !== "version" && k !== "updated_at");
    // A change that touches only the database's stamps is the save of earlier edits coming back.
    const what = edited.length ? edited.join(", ") : fields.length ? "saved" : op === "update" ? "no change" : "";
    const value = edited.length === 1 ? row?.[edited[0]!] : undefined;
    const sample = typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value);
    const shown = row ?? before;
    const label = table === "scenes" ? `scene ${Number(shown?.["scene_index"] ?? 0) + 1}`
      : table === "clips" ? `clip #${Number(shown?.["order_index"] ?? 0) + 1}`
      : table === "projects" ? "project"
      : table === "exports" ? `export ${shown?.["format"] ?? ""}`.trim()
      : table.replace(/_/g, " ").replace(/s$/, "");
    const item = h("li", { "data-seq": String(seq), "data-row": id, "data-op": op, "data-at": String(Date.now()) },
      h("span", { class: "seq" }, String(seq)),
      h("span", { class: `op op-${op}` }, op),
      h("span", { class: "what", title: `${table} ${id}` }, label, what ? h("b", {}, ` · ${what}`) : null),
      h("time", { class: "muted" }, clock(new Date())),
      sample ? h("q", {}, sample.length > 80 ? sample.slice(0, 80) + "…" : sample) : null,
    );
    this.stream.prepend(item);
    while (this.stream.children.length > STREAM_LENGTH) this.stream.lastElementChild!.remove();
    this.changes += 1;
    text(document.getElementById("change-count"), String(this.changes));
    const target = this.sceneEls.get(id) ?? this.clipEls.get(id);
    if (target !== undefined) {
      target.classList.remove("flash");
      void target.offsetWidth; // restart the animation
      target.classList.add("flash");
    }
  }

  /** The project's exports, from the stream: the daemon sends their rows with the snapshot and each change. */
  private renderExports(): void {
    const exports = [...(this.client.view.sides.get("exports")?.values() ?? [])]
      .sort((a, b) => String(a["created_at"] ?? "").localeCompare(String(b["created_at"] ?? "")));
    const list = document.getElementById("exports")!;
    list.hidden = document.getElementById("exports-title")!.hidden = exports.length === 0;
    list.replaceChildren(...exports.map((e) => h("li", { "data-export": String(e["id"]) },
      h("span", { class: "pill" }, String(e["status"] ?? "")),
      ` ${e["format"] ?? ""} ${e["resolution"] ?? ""} `,
      typeof e["progress"] === "number" ? h("span", { class: "muted" }, `${Math.round(Number(e["progress"]) * 100)} %`) : null)));
  }
}

function setValue(input: HTMLInputElement | HTMLTextAreaElement, value: unknown): void {
  const wanted = value === null || value === undefined ? "" : String(value);
  // The field being typed in keeps what the person typed; it takes the view's value on blur.
  if (document.activeElement !== input && input.value !== wanted) input.value = wanted;
}

// ---- start ---------------------------------------------------------------------------------------

function start(): void {
  const app = document.getElementById("app")!;
  const form = document.getElementById("token-form") as HTMLFormElement;
  const field = document.getElementById("token") as HTMLInputElement;
  field.value = token() ?? "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (field.value.trim()) sessionStorage.setItem(TOKEN_KEY, field.value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  const match = /^projects\/([0-9a-fA-F-]{36})\/?$/.exec(location.pathname.slice(ROOT.pathname.length));
  if (match === null) {
    listingPage(app);
    return;
  }
  new ProjectPage(app, match[1]!.toLowerCase());
}

start();
