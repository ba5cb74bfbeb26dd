// The edits of a page that closed or crashed before syncd answered them: kept in the storage while
// unanswered, and sent by the next page of the same browser that opens their project, under their
// own client id and mids. Against an in-memory syncd, with an in-memory storage and Web Locks; the
// browser's own localStorage and navigator.locks are used in tests/browser/test_react.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import { SyncdStudio, UNSENT_KEY } from "../dist/index.js";
import { FakeSocket, FakeSyncd, MemoryStorage, PROJECT } from "./fake.mjs";

/** The Web Locks of one browser: `page()` gives the `navigator.locks` of one page, and `die()` ends it. */
class Browser {
  held = new Map(); // lock name -> page

  page() {
    const browser = this;
    const page = {
      request(name, options, callback) {
        if (callback === undefined) [options, callback] = [{}, options];
        if (browser.held.has(name)) {
          if (options.ifAvailable) return callback(null);
          return new Promise(() => undefined); // waits; these tests never need it granted later
        }
        browser.held.set(name, page);
        return Promise.resolve(callback({ name })).finally(() => {
          if (browser.held.get(name) === page) browser.held.delete(name);
        });
      },
      die() {
        for (const [name, owner] of browser.held) if (owner === page) browser.held.delete(name);
      },
    };
    return page;
  }
}

const settle = () => new Promise((done) => setTimeout(done, 10));

/** An in-memory syncd with the project, one browser's storage and locks, and studios for its pages (closed after `t`). */
function setup(t) {
  const syncd = new FakeSyncd();
  syncd.addProject({ id: PROJECT, title: "The Lighthouse" });
  const storage = new MemoryStorage();
  const browser = new Browser();
  const studios = [];
  t.after(() => studios.forEach((s) => s.close())); // a failed check must not leave them reconnecting
  const studio = (locks, token = null, url = "ws://127.0.0.1:1") => {
    studios.push(new SyncdStudio({ url, WebSocket: syncd.WebSocket, storage, locks, token }));
    return studios.at(-1);
  };
  return { syncd, storage, browser, studio };
}

const kept = (storage) => [...storage.items.keys()].filter((key) => key.startsWith(UNSENT_KEY));

test("an edit without an answer is kept until answered, and a page opened after its page died sends it", async (t) => {
  const { syncd, storage, browser, studio } = setup(t);
  const first = browser.page();
  const a = studio(first);
  await a.open(PROJECT);
  syncd.silent = true;
  a.updateProject(PROJECT, { title: "Typed before the crash" }).catch(() => undefined);
  await settle();
  assert.deepEqual(kept(storage), [`${UNSENT_KEY}${PROJECT}.${a.clientId}`]);
  const record = JSON.parse(storage.getItem(kept(storage)[0]));
  assert.deepEqual(record.frames.map((frame) => [frame.type, frame.mid, frame.set]), [["patch", 1, { title: "Typed before the crash" }]]);

  const alive = studio(browser.page());
  await alive.open(PROJECT);
  await settle();
  assert.equal(kept(storage).length, 1, "its page is alive: left alone");

  first.die(); // the tab crashed: no unload, no close, only the browser letting its locks go
  syncd.silent = false;
  const b = studio(browser.page());
  await b.open(PROJECT);
  await settle();
  assert.deepEqual(
    syncd.received.map((frame) => [frame.client_id, frame.type, frame.mid]),
    [[a.clientId, "patch", 1]],
    "sent once, under the dead page's client id and mid",
  );
  assert.equal(syncd.projects.get(PROJECT).project.title, "Typed before the crash");
  assert.deepEqual(kept(storage), [], "answered: no longer kept");
});

test("an edit is kept before its call returns, and no longer a moment after its answer", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { syncd, storage, browser, studio } = setup(t);
  const a = studio(browser.page());
  await a.open(PROJECT);
  syncd.waiting = [];
  const edits = [a.updateProject(PROJECT, { title: "One" }), a.updateProject(PROJECT, { title: "Two" })];
  await new Promise((done) => setImmediate(done)); // the calls are sent; nothing is answered yet
  const [key] = kept(storage);
  assert.deepEqual(JSON.parse(storage.getItem(key)).frames.map((frame) => frame.mid), [1, 2]);
  assert.equal(browser.held.has(key), true, "its lock is held while it is kept");
  syncd.answer();
  await Promise.all(edits);
  assert.equal(kept(storage).length, 1, "the answers are taken together, a moment later");
  t.mock.timers.tick(249);
  assert.equal(kept(storage).length, 1);
  t.mock.timers.tick(1);
  await new Promise((done) => setImmediate(done)); // the lock is let go as its callback's promise settles
  assert.deepEqual(kept(storage), []);
  assert.equal(browser.held.has(key), false, "and let go once nothing is kept (a page holding one may lose its back/forward cache)");
});

test("another user's kept edits are theirs to send, and another daemon's stay for it", async (t) => {
  const { syncd, storage, browser, studio } = setup(t);
  const token = (sub) => `e30.${Buffer.from(JSON.stringify({ sub })).toString("base64url")}.x`;
  const alice = "a11ce000-0000-4000-8000-000000000001";
  const first = browser.page();
  const a = studio(first, token(alice));
  await a.open(PROJECT);
  syncd.silent = true;
  a.updateProject(PROJECT, { title: "Alice's, unanswered" }).catch(() => undefined);
  await settle();
  assert.equal(JSON.parse(storage.getItem(kept(storage)[0])).user, alice);
  first.die();
  syncd.silent = false;
  const bob = studio(browser.page(), token("b0b00000-0000-4000-8000-000000000002"));
  await bob.open(PROJECT);
  await settle();
  assert.equal(kept(storage).length, 1, "not sent under Bob's token");
  const staging = studio(browser.page(), token(alice), "ws://127.0.0.1:2");
  await staging.open(PROJECT);
  await settle();
  assert.equal(kept(storage).length, 1, "not sent to another daemon with a project of the same id");
  const again = studio(browser.page(), () => token(alice.toUpperCase()));
  await again.open(PROJECT);
  await settle();
  assert.equal(syncd.projects.get(PROJECT).project.title, "Alice's, unanswered");
  assert.deepEqual(kept(storage), []);
});

for (const [code, why] of [
  [4409, "a later page must not send them under that id: it would take the other connection over"],
  [4404, "the project was there and is gone: deleted, its edits are moot"],
]) {
  test(`the kept edits of a connection closed with ${code} after it joined are given up`, async (t) => {
    const { syncd, storage, browser, studio } = setup(t);
    const a = studio(browser.page());
    await a.open(PROJECT);
    syncd.silent = true;
    a.updateProject(PROJECT, { title: "Unanswered" }).catch(() => undefined);
    await settle();
    const [key] = kept(storage);
    assert.equal(browser.held.has(key), true);
    FakeSocket.last.drop(code, "closed");
    await settle();
    assert.deepEqual(kept(storage), [], why);
    assert.equal(browser.held.has(key), false);
  });
}

test("edits made on a Redux copy (4404 before any join) stay kept until the project is in syncd", async (t) => {
  const { syncd, storage, browser, studio } = setup(t);
  const first = browser.page();
  const a = studio(first);
  const missing = "0f000000-0000-4000-8000-0000000000aa";
  const editor = a.editor(missing);
  await editor.connect(1000).catch(() => undefined);
  editor.patch("projects", missing, { title: "Typed on the copy" }).catch(() => undefined);
  await settle();
  assert.equal(kept(storage).length, 1);
  first.die();
  const b = studio(browser.page());
  await b.loadProject(missing, { projects: [{ id: missing, title: "Copy", scenes: [], clips: [] }] });
  await settle();
  assert.equal(kept(storage).length, 1, "syncd does not have the project yet: left for the adoption");
  syncd.addProject({ id: missing, title: "Copy" }); // adopted (from this page or any other)
  await b.open(missing);
  await settle();
  assert.equal(syncd.projects.get(missing).project.title, "Typed on the copy");
  assert.deepEqual(kept(storage), []);
});

test("without Web Locks nothing is kept: a live tab's edits could not be told from a dead one's", async (t) => {
  const { syncd, storage, studio } = setup(t);
  const a = studio(null);
  await a.open(PROJECT);
  syncd.silent = true;
  a.updateProject(PROJECT, { title: "Not kept" }).catch(() => undefined);
  await settle();
  assert.deepEqual(kept(storage), []);
});
