// Starts `syncd run` in local mode as a real process for the end-to-end tests, as
// tests/support/daemon.py does for the Python ones, and reads what it prints.

import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** The syncd command of the repository's virtual environment (tests/run makes it), or $SYNCD_TEST_BIN. */
export const SYNCD = process.env.SYNCD_TEST_BIN ?? join(REPO, ".venv", "bin", "syncd");
/** A debounce short enough that saves happen within a test. */
export const FAST_SAVES = { SYNCD_DEBOUNCE__QUIET: "0.2", SYNCD_DEBOUNCE__MAX_WAIT: "1" };

const ADDRESS = /editors connect to (ws:\/\/\S+)/;
const PROJECT = /^project: ([0-9a-f-]{36})/;

/** The environment without the variables that configure syncd, so nothing leaks in from the caller. */
function cleanEnv(extra) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(SYNCD_|SUPABASE_|NOTIFY_)/.test(name)),
  );
  return { ...env, PYTHONUNBUFFERED: "1", ...extra };
}

/** One `syncd run` process on a free port (then the same port on restart), with its own state directory. */
export class Daemon {
  constructor(env = FAST_SAVES) {
    this.root = mkdtempSync(join(tmpdir(), "syncd-js-"));
    this.stateDir = join(this.root, "state");
    this.env = env;
    this.port = 0;
    this.url = "";
    this.projectId = "";
    this.proc = null;
    this.stderr = "";
  }

  /** Start the process and wait until it prints its address and demo project (it serves from then on). */
  start(timeoutMs = 20_000) {
    const args = ["run", "--state-dir", this.stateDir, "--port", String(this.port)];
    const proc = spawn(SYNCD, args, { cwd: this.root, env: cleanEnv(this.env), stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.stderr = "";
    proc.stderr.setEncoding("utf8").on("data", (text) => (this.stderr += text));
    return new Promise((resolvePromise, reject) => {
      let buffer = "";
      const timer = setTimeout(() => reject(new Error(`syncd did not start in time:\n${this.stderr}`)), timeoutMs);
      const fail = (code) => {
        clearTimeout(timer);
        reject(new Error(`syncd exited early (${code}):\n${this.stderr}`));
      };
      proc.once("exit", fail);
      proc.stdout.setEncoding("utf8").on("data", (text) => {
        buffer += text;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          const address = ADDRESS.exec(line);
          if (address) {
            this.url = address[1];
            this.port = Number(new URL(this.url).port);
          }
          const project = PROJECT.exec(line);
          if (project) this.projectId = project[1];
          if (this.url && this.projectId) {
            clearTimeout(timer);
            proc.off("exit", fail);
            resolvePromise(this);
          }
        }
      });
    });
  }

  /** `kill -9`: no flush, no goodbye. */
  async kill() {
    const exited = new Promise((done) => this.proc.once("exit", done));
    this.proc.kill("SIGKILL");
    await exited;
  }

  /** SIGTERM (the daemon saves everything first), then wait for it to end. */
  async stop() {
    if (this.proc === null || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((done) => this.proc.once("exit", done));
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }

  /** `syncd project show ID` on the state directory (run while the daemon is stopped): the parsed JSON. */
  async show(projectId = this.projectId) {
    const { stdout } = await promisify(execFile)(SYNCD, ["project", "show", projectId, "--state-dir", this.stateDir], {
      cwd: this.root,
      env: cleanEnv({}),
    });
    return JSON.parse(stdout);
  }

  /** `syncd token USER_ID`: an editor token for that user, signed with the state directory's secret. */
  async token(userId) {
    const { stdout } = await promisify(execFile)(SYNCD, ["token", userId, "--state-dir", this.stateDir], {
      cwd: this.root,
      env: cleanEnv({}),
    });
    return stdout.trim();
  }

  /** Stop the process and remove its folder. */
  async dispose() {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Wait until `predicate()` holds, checking every few milliseconds; fail after `timeoutMs`. */
export async function waitFor(predicate, timeoutMs = 10_000, what = "a condition") {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 5));
  }
}
