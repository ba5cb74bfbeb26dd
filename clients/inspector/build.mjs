// Builds the inspector page into a folder (default: the Python package's syncd/inspector/static):
// inspector.js (the page and the TypeScript client, one ES module), inspector.css and index.html.
// The output depends only on the sources, so a rebuild can be compared with the shipped copy.
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "..", "syncd", "inspector", "static"));
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outfile: join(out, "inspector.js"),
  logLevel: "warning",
});
for (const name of ["index.html", "inspector.css"]) {
  await copyFile(join(here, "src", name), join(out, name));
}
