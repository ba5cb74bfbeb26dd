"""What keeping the editors' unanswered edits in ``localStorage`` costs a page (clients/js/src/recovery.ts).

A real ``syncd run`` in local mode and headless Chromium with the TypeScript client (bundled from
``clients/js/src``). A page makes a fresh project and then, once with the studio's defaults (edits
kept, under a Web Lock) and once with ``locks: null`` (nothing kept):

- ``typing``: ``--keys`` patches of one scene's heading, each in a task of its own, as keystrokes
  come; timed until every one is answered;
- ``syncScenes``: one ``syncScenes`` call that inserts ``--scenes`` scenes; timed until it resolves.

For each it prints the wall time, the time spent inside ``localStorage.setItem`` / ``removeItem``
(wrapped in the page, ``performance.now``), how many calls, and the longest one. Rounds alternate
between the two settings; medians over ``--rounds``.

Run from the repository root, after ``tests/run`` has installed Chromium and the Node packages::

    .venv/bin/python bench/keep_edits.py
    .venv/bin/python bench/keep_edits.py --keys 500 --scenes 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO_ROOT
from playwright.async_api import async_playwright

sys.path.insert(0, str(REPO_ROOT))
from tests.browser.conftest import CLIENT, bundle, page_server
from tests.support.daemon import DaemonProcess

PAGE = """<!doctype html><title>keep edits</title><body><script type="module">
import { SyncdStudio } from "/client.js";
const storage = { time: 0, calls: 0, longest: 0 };
for (const name of ["setItem", "removeItem"]) {
  const original = Storage.prototype[name];
  Storage.prototype[name] = function (...args) {
    const start = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const took = performance.now() - start;
      storage.time += took;
      storage.calls += 1;
      storage.longest = Math.max(storage.longest, took);
    }
  };
}
const task = () => new Promise((done) => setTimeout(done, 0));
window.run = async (url, kind, keep, count) => {
  const studio = new SyncdStudio({ url, ...(keep ? {} : { locks: null }) });
  const { id } = await studio.createProject({ title: `${kind} ${keep}` });
  await studio.syncScenes(id, [{ heading: "Dusk" }]);
  const editor = await studio.open(id);
  const scene = editor.view.ordered("scenes")[0].id;
  Object.assign(storage, { time: 0, calls: 0, longest: 0 });
  const start = performance.now();
  if (kind === "typing") {
    const edits = [];
    for (let i = 0; i < count; i += 1) {
      edits.push(editor.patch("scenes", scene, { heading: "Dusk".padEnd(5 + i, "x") }));
      await task();
    }
    await Promise.all(edits);
  } else {
    const added = Array.from({ length: count }, (_, i) => ({ heading: `Scene ${i}` }));
    await studio.syncScenes(id, (current) => [...current, ...added]);
  }
  const wall = performance.now() - start;
  await new Promise((done) => setTimeout(done, 400)); // the record's last removal (250 ms after the answers)
  const kept = Object.keys(localStorage).filter((key) => key.startsWith("syncd.unsent.")).length;
  studio.close();
  return { wall, ...storage, kept };
};
window.ready = true;
</script></body>"""


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        daemon = DaemonProcess(Path(folder) / "state")
        daemon.start()
        try:
            client = bundle(CLIENT / "src" / "index.ts", Path(folder) / "client.js")
            files = {"/": (PAGE.encode(), "text/html"), "/client.js": (client, "text/javascript")}
            async with page_server(files) as origin, async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
                page = await browser.new_page()
                await page.goto(origin)
                await page.wait_for_function("window.ready === true")
                results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
                for kind, count in (("typing", args.keys), ("syncScenes", args.scenes)):
                    for _ in range(args.rounds):
                        for keep in (True, False):
                            figures = await page.evaluate(
                                "([url, kind, keep, count]) => window.run(url, kind, keep, count)",
                                [daemon.http, kind, keep, count],
                            )
                            results.setdefault((kind, keep), []).append(figures)
                await browser.close()
        finally:
            daemon.stop()
    print(f"{args.keys} keystrokes, {args.scenes} scenes in one syncScenes; medians of {args.rounds} rounds")
    print("| run | kept | wall ms | storage ms | storage calls | longest call ms | records left |")
    print("|---|---|---|---|---|---|---|")
    for (kind, keep), rounds in results.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in ("wall", "time", "calls", "longest")}
        left = max(r["kept"] for r in rounds)
        print(
            f"| {kind} | {'yes' if keep else 'no'} | {med['wall']:.0f} | {med['time']:.1f} | "
            f"{med['calls']:.0f} | {med['longest']:.2f} | {left} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200, help="patches in the typing run")
    parser.add_argument("--scenes", type=int, default=1000, help="scenes in the syncScenes run")
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
