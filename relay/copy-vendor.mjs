// Copies the pages' browser dependencies from node_modules/ (npm ci, pinned by
// package-lock.json) into static/vendor/, so the pages load them from the relay and never from
// a CDN. Why these files and these rewrites: static/README.md.
//
//   - the Firebase JS SDK's browser ES modules (both pages' sign-in) into vendor/firebase/;
//   - Chart.js's self-contained minified UMD build (the dashboard's charts) into vendor/chart.js/.
//
//   node copy-vendor.mjs          write static/vendor/
//   node copy-vendor.mjs --check  exit 1 if the committed copies differ from what it would write
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendorDir = join(here, "static", "vendor");

// Any import specifier left pointing off this host after a rewrite is a failure.
const remoteImport = /(\bfrom\s*|\bimport\s*\(?\s*)["']https?:/;
// Source maps are not shipped (a rewrite shifts columns of the minified line anyway).
const dropSourceMap = (text) => text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");

function packageVersion(pkg) {
  return JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
}

// The page needs Auth only; app is what auth imports.
const FIREBASE_FILES = ["firebase-app.js", "firebase-auth.js"];
// The CDN builds import each other by absolute gstatic URL; offline that URL cannot load.
const cdnImport = /(\bfrom\s*|\bimport\s*\(?\s*)"https:\/\/www\.gstatic\.com\/firebasejs\/([^/"]+)\/([a-z-]+\.js)"/g;

function firebase(name) {
  const version = packageVersion("firebase");
  let text = readFileSync(join(here, "node_modules", "firebase", name), "utf8");
  text = text.replace(cdnImport, (_, keyword, cdnVersion, target) => {
    if (cdnVersion !== version) throw new Error(`${name} imports ${target} of ${cdnVersion}, package is ${version}`);
    if (!FIREBASE_FILES.includes(target)) throw new Error(`${name} imports ${target}, which is not vendored`);
    return `${keyword}"./${target}"`;
  });
  if (remoteImport.test(text)) throw new Error(`${name} still imports from a remote URL`);
  return `// firebase@${version} ${name}, vendored by relay/copy-vendor.mjs (CDN import rewritten to ./)\n${dropSourceMap(text)}`;
}

// Chart.js's UMD build bundles its one dependency (@kurkle/color) and imports nothing, so it
// runs in the page as a classic script (globalThis.Chart) with no import to rewrite. Its ES
// module build imports the bare specifier "@kurkle/color", which a browser cannot resolve.
function chartJs(name) {
  const version = packageVersion("chart.js");
  const text = readFileSync(join(here, "node_modules", "chart.js", "dist", name), "utf8");
  if (/\brequire\s*\(\s*["']/.test(text.replace(/typeof require/g, ""))) throw new Error(`chart.js ${name} requires a module`);
  if (remoteImport.test(text)) throw new Error(`chart.js ${name} imports from a remote URL`);
  return `// chart.js@${version} dist/${name}, vendored by relay/copy-vendor.mjs (source map reference dropped)\n${dropSourceMap(text)}`;
}

const OUTPUTS = [
  ...FIREBASE_FILES.map((name) => ["firebase", name, () => firebase(name)]),
  ["chart.js", "chart.umd.min.js", () => chartJs("chart.umd.min.js")],
];

const check = process.argv.includes("--check");
const stale = [];
for (const [dir, name, make] of OUTPUTS) {
  const text = make();
  const outDir = join(vendorDir, dir);
  const target = join(outDir, name);
  const current = existsSync(target) ? readFileSync(target, "utf8") : null;
  if (current === text) continue;
  if (check) stale.push(`${dir}/${name}`);
  else {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(target, text);
  }
}
if (stale.length) {
  console.error(`relay/static/vendor is stale (${stale.join(", ")}): run make install`);
  process.exit(1);
}
